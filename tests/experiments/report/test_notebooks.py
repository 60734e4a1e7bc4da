"""notebooks/*.ipynb: each analyses one sweep of its own experiment (the newest by default, said at the top), shows its
figures inline, writes no PNG beside itself, and says what to run when there is no sweep of its experiment."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from experiments.report.notebook import NoSweep, choose_sweep
from experiments.results.tables import write_results
from tests.experiments.cli.test_cli import harnesslab

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


def sweep(where: Path, *overrides: str) -> Path:
    """Run `harnesslab run -m <overrides>` in `where`; returns the sweep folder it made."""
    before = set(where.glob("multirun/*/*"))
    done = harnesslab("run", "-m", *overrides, cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    [made] = set(where.glob("multirun/*/*")) - before
    return made


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Three small sweeps in order: ttft_quick (2 jobs), ttft_quick again (1 job), context_quick (1 job, the newest)."""
    where = tmp_path_factory.mktemp("sweeps")
    ttft = ("experiment=ttft_quick", "sandbox=local", "tasks.only=[arithmetic]")
    older = sweep(where, *ttft, "harness=coupled,decoupled")
    newer = sweep(where, *ttft, "harness=decoupled")
    context = sweep(where, "experiment=context_quick", "context=full", "tasks.only=[refactor_6]")
    return {"multirun": where / "multirun", "older ttft": older, "newer ttft": newer, "context": context}


def execute(name: str, results: Path, folder: Path, monkeypatch):
    """Run a copy of notebooks/<name> in `folder` as Jupyter does (in the notebook's folder), without HARNESSLAB_PLOTS."""
    import nbclient
    import nbformat

    monkeypatch.setenv("HARNESSLAB_RESULTS", str(results))
    monkeypatch.delenv("HARNESSLAB_PLOTS", raising=False)
    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(shutil.copy(NOTEBOOKS / name, folder), as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def outputs(notebook) -> list:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def text(notebook) -> str:
    return "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs(notebook))


def inline_images(notebook) -> int:
    return sum(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs(notebook))


@pytest.mark.slow
@pytest.mark.parametrize("name, own, figures", [("ttft.ipynb", "newer ttft", 2), ("context.ipynb", "context", 1)])
def test_a_notebook_analyses_only_the_newest_sweep_of_its_experiment_and_shows_its_figures_inline(
        sweeps, tmp_path, monkeypatch, name, own, figures):
    notebook = execute(name, sweeps["multirun"], tmp_path / "notebooks", monkeypatch)
    shown = text(notebook)
    chosen = sweeps[own]
    assert f"Analysing {chosen}:" in shown and "the newest (by its runs' recorded start)" in shown
    assert f"{len(list(chosen.rglob('results.duckdb')))} results file(s)" in shown
    for other in set(sweeps) - {own, "multirun"}:
        assert str(sweeps[other]) not in shown
    assert inline_images(notebook) == figures
    assert not list((tmp_path / "notebooks").rglob("*.png"))


@pytest.mark.slow
def test_a_notebook_without_a_sweep_of_its_experiment_says_which_command_makes_one(sweeps, tmp_path, monkeypatch):
    import nbclient

    with pytest.raises(nbclient.exceptions.CellExecutionError) as error:
        execute("recovery.ipynb", sweeps["multirun"], tmp_path / "notebooks", monkeypatch)
    message = str(error.value)
    assert f"NoSweep: no sweep of experiment=recovery under {sweeps['multirun']}: 3 sweep(s)" in message
    assert "`harnesslab run -m experiment=recovery_quick`" in message
    assert "Traceback" not in message  # a missing sweep is no bug: the message alone


def fake_sweep(folder: Path, experiment: str | None, started: dt.datetime, jobs: int = 1) -> Path:
    """A sweep folder as `harnesslab run -m` leaves it, with only the `runs` rows that say what it was."""
    folder.mkdir(parents=True)
    (folder / "multirun.yaml").write_text("{}\n")
    choices = "{}" if experiment is None else f'{{"experiment": "{experiment}"}}'
    for job in range(jobs):
        (folder / str(job)).mkdir()
        write_results(folder / str(job) / "results.duckdb", f"run-{folder.name}-{job}",
                      {"runs": [{"started": started, "choices": choices, "config": "{}"}]})
    return folder


def test_the_default_is_the_newest_by_recorded_start_of_the_experiment_or_its_quick_version(tmp_path):
    day = dt.datetime(2026, 1, 1)
    # folder names sort the other way round: the recorded start decides
    newest = fake_sweep(tmp_path / "a", "ttft", day.replace(hour=12), jobs=2)
    fake_sweep(tmp_path / "b", "ttft_quick", day.replace(hour=11))
    fake_sweep(tmp_path / "c", "context_quick", day.replace(hour=13))
    fake_sweep(tmp_path / "d", None, day.replace(hour=14))
    chosen = choose_sweep("ttft", multirun=tmp_path)
    assert chosen.folder == newest and len(chosen.files) == 2 and chosen.experiments == {"ttft"}
    assert "of 2 sweep(s) of experiment=ttft or ttft_quick" in chosen.why and "2 sweep(s) of other experiments left out" in chosen.why


def test_a_named_sweep_or_results_file_is_taken_as_is_with_a_note_when_it_is_another_experiment(tmp_path):
    context = fake_sweep(tmp_path / "multirun" / "c", "context", dt.datetime(2026, 1, 1))
    chosen = choose_sweep("ttft", context)
    assert chosen.folder == context and "HARNESSLAB_RESULTS names it" in chosen.why
    assert "did not record experiment=ttft" in chosen.why
    assert choose_sweep("context", context / "0" / "results.duckdb").files == [context / "0" / "results.duckdb"]


def test_from_a_fresh_clone_the_notebooks_say_what_to_run(tmp_path):
    with pytest.raises(NoSweep, match=r"\(it does not exist yet\): no sweep\. .*`harnesslab run -m experiment=ttft_quick`"):
        choose_sweep("ttft", multirun=tmp_path / "multirun")
    with pytest.raises(NoSweep, match="no such file or folder"):
        choose_sweep("ttft", tmp_path / "typo")


def test_figures_are_saved_only_when_asked_and_into_a_folder_that_need_not_exist(tmp_path, capsys):
    from matplotlib.figure import Figure

    from experiments.report.notebook import save_figure

    fig = Figure()
    fig.subplots().plot([1, 2, 3])
    save_figure(fig, "nothing.png", None)
    assert not list(tmp_path.rglob("*.png"))
    save_figure(fig, "cdf.png", tmp_path / "not" / "yet")
    assert (tmp_path / "not" / "yet" / "cdf.png").stat().st_size > 1000
    assert f"wrote {tmp_path / 'not' / 'yet' / 'cdf.png'}" in capsys.readouterr().out
