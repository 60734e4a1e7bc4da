"""experiment=recovery_quick end to end: the sweep of faults x harnesses, the report's recovery section,
and notebooks/recovery.ipynb executed on its results."""
from __future__ import annotations

import pytest

from experiments.results.tables import read_table
from tests.experiments.cli.test_cli import harnesslab
from tests.helpers import run_notebook
from tests.stores.test_durable import require_postgres_server

FAULTS = ("none", "harness_kill", "sandbox_kill", "store_restart", "model_faults")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    require_postgres_server()
    where = tmp_path_factory.mktemp("recovery")
    done = harnesslab("run", "experiment=recovery_quick", cwd=where, timeout_s=900)  # ten fault runs: 2 min, 5 under load
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = list(where.glob("multirun/*/*"))
    return folder


@pytest.mark.slow
@pytest.mark.postgres
def test_every_fault_meets_both_harnesses_and_the_decoupled_one_completes_everything(sweep):
    files = sorted(sweep.rglob("results.duckdb"))
    assert len(files) == 2 * len(FAULTS)
    sessions, recovery = read_table(files, "sessions"), read_table(files, "recovery")
    assert set(sessions["faults"]) == set(FAULTS) and set(sessions["harness"]) == {"coupled", "decoupled"}
    assert recovery["lost_events"].sum() == 0 and recovery["duplicate_effects"].sum() == 0
    assert read_table(files, "violations").empty
    decoupled = sessions[sessions["harness"] == "decoupled"]
    assert (decoupled["status"] == "completed").all(), decoupled[decoupled["status"] != "completed"]["reason"]
    faults = read_table(files, "faults")
    assert set(faults["kind"]) >= {"harness_kill", "store_restart"}
    for run in recovery.itertuples():  # each run counts what happened in it, per kind asked for
        happened = faults[faults["run_id"] == run.run_id]["kind"]
        asked = [] if run.faults == "none" else run.faults.split("+")
        assert run.injected_by_kind == ", ".join(f"{kind} {(happened == kind).sum()}" for kind in asked), run
        assert run.injected == len(happened)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_report_has_a_recovery_section_and_plot(sweep):
    done = harnesslab("report", str(sweep), cwd=sweep)
    assert done.returncode == 0, done.stderr
    assert "Recovery: 10 run(s) with worker processes" in done.stdout
    assert "recovery time per fault kind" in done.stdout and "extra tokens %" in done.stdout
    assert (sweep / "report" / "recovery.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.postgres
def test_the_recovery_notebook_runs_against_the_quick_results(sweep, tmp_path, monkeypatch):
    outputs = run_notebook("recovery.ipynb", sweep, tmp_path, monkeypatch)
    assert "10 results file(s)" in outputs and "10 of them runs with workers" in outputs
    assert "acknowledged events lost: 0" in outputs and "decoupled sessions not completed: 0" in outputs
    assert (tmp_path / "notebook_recovery.png").stat().st_size > 10_000
