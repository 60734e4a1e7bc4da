"""Runs under real faults (`harnesslab run faults=...`): supervised worker processes SIGKILLed, sandboxes
destroyed under tool calls, PostgreSQL restarted, model errors; then every check of the run."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from experiments.results import read_table
from tests.experiments.test_cli import harnesslab
from tests.stores.test_durable import require_postgres_server

SCRIPTED = ["model=scripted", "model.ttft_ms=60", "model.ms_per_output_token=1"]
QUICK = [*SCRIPTED, "tasks.repeat=2", "run.concurrency=10"]


def fault_run(tmp_path: Path, *overrides: str, model: list[str] = SCRIPTED) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Run with faults; returns the printed summary, and the sessions and faults tables."""
    done = harnesslab("run", *model, "tasks.repeat=2", "run.concurrency=10", *overrides, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    return done.stdout, read_table([results], "sessions"), read_table([results], "faults")


def assert_nothing_lost(out: str, sessions: pd.DataFrame) -> None:
    assert (sessions["status"] == "completed").all() and sessions["success"].all(), sessions[~sessions["success"]]["check_detail"]
    assert "invariants: 0 violation(s)" in out
    assert " checked, 0 lost" in out and "acknowledged events: 0 checked" not in out
    assert "side-effect journal: 0 duplicate start(s) of non-idempotent tools" in out


@pytest.mark.slow
def test_random_worker_kills_lose_nothing_and_successors_take_over(tmp_path):
    out, sessions, faults = fault_run(tmp_path, "faults=harness_kill", "faults.harness_kill.count=4", "run.seed=8")
    assert_nothing_lost(out, sessions)
    assert len(sessions) == 20 and set(sessions["faults"]) == {"harness_kill"}
    assert len(faults) == 4 and set(faults["point"]) == {"random"}
    takeovers = faults["since_ready_ms"].dropna()
    assert len(takeovers) > 0, "no killed worker held a session that its successor took over"
    assert "harness_kill: 4, recovered after p50" in out


@pytest.mark.slow
@pytest.mark.parametrize("point", ["model_stream", "tool_running", "append"])
def test_workers_killed_at_each_crash_point_lose_nothing(tmp_path, point):
    out, sessions, faults = fault_run(tmp_path, "faults=harness_kill", f"faults.harness_kill.at={point}",
                                      "faults.harness_kill.count=2", "faults.harness_kill.rate=0.3")
    assert_nothing_lost(out, sessions)
    assert len(faults) >= 1 and set(faults["point"]) == {point}
    assert faults["recovered_after_ms"].notna().any()


@pytest.mark.slow
@pytest.mark.parametrize("harness", ["decoupled", "coupled"])
def test_sandboxes_killed_under_tool_calls_are_replaced_by_the_decoupled_harness_only(tmp_path, harness):
    out, sessions, faults = fault_run(tmp_path, "faults=sandbox_kill", "faults.sandbox_kill.count=4", f"harness={harness}")
    assert len(faults) == 4 and set(faults["kind"]) == {"sandbox_kill"}
    assert faults["noticed"].all()  # the tool call it hit failed: no session went on unaware
    assert "invariants: 0 violation(s)" in out
    if harness == "decoupled":
        assert_nothing_lost(out, sessions)
        assert faults["recovered_after_ms"].notna().all()  # each got new hands
    else:  # the pet dies with its sandbox: each hit session fails, saying why
        failed = sessions[sessions["status"] == "failed"]
        assert set(failed["session_id"]) == set(faults["session_id"]) and failed["reason"].str.contains("PetLost").all()


@pytest.mark.slow
@pytest.mark.docker
def test_docker_sandboxes_killed_under_tool_calls(tmp_path, docker_image):
    out, sessions, faults = fault_run(tmp_path, "faults=sandbox_kill", "faults.sandbox_kill.count=2", "faults.sandbox_kill.rate=1.0",
                                      "sandbox=docker", "tasks.only=[greeting,fix_bug,count_rows]")
    assert_nothing_lost(out, sessions)  # at rate 1 the first logged calls are hit: 2 kills (workers racing may add one)
    assert len(faults) >= 2 and faults["recovered_after_ms"].notna().all()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restarted_mid_run_loses_no_acknowledged_event(tmp_path):
    require_postgres_server()
    out, sessions, faults = fault_run(tmp_path, "store=postgres", "faults=store_restart", "faults.store_restart.count=2",
                                      "faults.store_restart.interval_s=[0.3,0.6]", "tasks.repeat=3")
    assert_nothing_lost(out, sessions)
    assert len(faults) == 2 and faults["since_ready_ms"].notna().all()


@pytest.mark.slow
def test_faults_compose_and_model_errors_are_retried(tmp_path):
    out, sessions, faults = fault_run(
        tmp_path, "faults=[harness_kill,model_faults]", "faults.harness_kill.count=2",
        "faults.model_faults.rate_limit=0.1", "faults.model_faults.disconnect=0.1", model=["model=emulator"],
    )
    assert_nothing_lost(out, sessions)
    assert set(sessions["faults"]) == {"harness_kill+model_faults"}
    assert set(faults["kind"]) == {"harness_kill", "model_faults"}
    model = faults[faults["kind"] == "model_faults"]
    assert len(model) > 0 and model["target"].str.contains("429 rate_limit_error|529 overloaded_error|connection|stream cut").all(), set(model["target"])
    assert model["recovered_after_ms"].notna().all()


@pytest.mark.parametrize("overrides, expected", [
    (["faults=nope"], "Available options in 'faults'"),
    (["faults=harness_kill", "faults.harness_kill.at=lunch"], "valid: random, model_stream, tool_running, append"),
    (["faults=harness_kill", "store=memory"], "use store=sqlite or store=postgres"),
    (["faults=model_faults"], "use model=emulator"),  # QUICK uses the scripted model
    (["faults=store_restart"], "run it with store=postgres"),
])
def test_a_wrong_fault_setup_is_named(tmp_path, overrides, expected):
    done = harnesslab("run", *QUICK, *overrides, cwd=tmp_path)
    assert done.returncode != 0 and expected in done.stdout + done.stderr, done.stderr[-2000:]
