"""`harnesslab report` draws each section only on the runs it is about, and a report over several folders
writes into a new folder of its own, never into one of theirs."""
from __future__ import annotations

import pytest

from experiments.run.job import compose_config, run_job
from experiments.report.main import report
from tests.experiments.cli.test_cli import harnesslab

SCRIPTED = ["store=memory", "model=scripted", "model.ttft_ms=20", "tasks.only=[greeting,fix_bug]"]


@pytest.mark.slow
def test_both_harnesses_under_worker_processes_get_no_ttft_comparison(tmp_path):
    # a worker's start-up is inside these turns' TTFT: nothing to compare with the seed
    done = harnesslab("run", "-m", "harness=coupled,decoupled", "run.workers=1", "store=sqlite", *SCRIPTED[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = tmp_path.glob("multirun/*/*")
    done = harnesslab("report", str(sweep), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "varying harness: coupled, decoupled" in done.stdout
    assert "TTFT of each" not in done.stdout and "Decoupled vs coupled" not in done.stdout
    assert "no section of the report is about these runs" in done.stdout
    assert not list(sweep.rglob("ttft_*.png"))


def test_a_report_over_two_folders_writes_into_a_new_folder_and_leaves_theirs_alone(tmp_path, monkeypatch):
    folders = [tmp_path / "sweep_a", tmp_path / "sweep_b"]  # two sweeps of coupled vs decoupled, each with its report
    for folder in folders:
        for harness in ("coupled", "decoupled"):
            run_job(compose_config([*SCRIPTED, f"harness={harness}"]), folder / harness, {"harness": harness, "sandbox": "local"})
    report(folders[0])  # the first folder's own report
    own = {p.name: p.read_bytes() for p in (folders[0] / "report").iterdir()}
    assert set(own) == {"ttft_cdf.png", "ttft_breakdown.png"}

    monkeypatch.chdir(tmp_path)
    first, second = report(folders), report(folders)
    assert {p.name: p.read_bytes() for p in (folders[0] / "report").iterdir()} == own
    assert not (folders[1] / "report").exists()
    written = []
    for text in (first, second):
        [named] = [line.split("this report's folder: ")[1].split(" ")[0] for line in text.splitlines() if "this report's folder" in line]
        assert (tmp_path / named / "ttft_cdf.png").exists() and f"wrote {named}/ttft_cdf.png" in text
        written.append(named)
    assert written[0] != written[1]  # a new folder each time: the first report is kept

    chosen = tmp_path / "mine"
    assert f"wrote {chosen}/ttft_breakdown.png" in report(folders, chosen) and (chosen / "ttft_cdf.png").exists()
