"""Workers killed for real (SIGKILL) at random points: every session still completes and passes its
check, the logs keep every invariant, and a restarted worker takes its slot's sessions over at once."""
from __future__ import annotations

import pytest

from experiments.recovery import inject_faults, write
from experiments.results import read_table
from tests.experiments.test_cli import harnesslab

QUICK = ["model=scripted", "model.ttft_ms=60", "model.ms_per_output_token=1", "tasks.repeat=4", "run.concurrency=10"]


@pytest.mark.slow
async def test_random_worker_kills_lose_nothing(tmp_path):
    found = await inject_faults(tmp_path, kills=8, workers=2, overrides=QUICK, seed=8)
    assert len(found.kills) == 8
    assert (found.sessions, found.completed, found.succeeded) == (40, 40, 40), found.failures
    assert found.violations == [] and found.duplicate_effects == 0
    takeovers = [k["since_ready_ms"] for k in found.kills if k["since_ready_ms"] is not None]
    assert takeovers, "no killed worker held a session that its successor took over"
    assert sorted(takeovers)[len(takeovers) // 2] < 2000  # generous: the benchmark reports against 500 ms
    path = await write(tmp_path, found)
    faults = read_table([path], "faults")
    assert len(faults) == 8 and set(faults["kind"]) == {"harness_kill"}
    assert len(read_table([path], "events")) > 40


@pytest.mark.slow
def test_the_recovery_command(tmp_path):
    done = harnesslab("recovery", "--kills", "3", "--dir", str(tmp_path), *QUICK[:-2], "tasks.repeat=2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "faults: 3 (harness_kill" in done.stdout and "sessions: 20/20 completed, 20/20 passed their check, 0 lost" in done.stdout
    assert "invariants: 0 violation(s)" in done.stdout and (tmp_path / "results.duckdb").exists()
    assert "side-effect journal: 0 duplicate start(s) of non-idempotent tools" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("harness, all_complete", [("decoupled", True), ("coupled", False)])
async def test_killed_sandboxes_are_replaced_by_the_decoupled_harness_only(tmp_path, harness, all_complete):
    slow = ["model=scripted", "model.ttft_ms=80", "model.ms_per_output_token=1", "tasks.repeat=3", f"harness={harness}"]
    found = await inject_faults(tmp_path, kills=6, workers=2, overrides=slow, seed=3, fault="sandbox_kill")
    assert found.violations == []
    killed = [k for k in found.kills if k["kind"] == "sandbox_kill"]
    noticed = [k for k in killed if k["noticed"]]
    assert len(killed) == 6 and noticed, "no session noticed its hands were gone"
    if all_complete:
        assert found.completed == found.sessions
        assert all(k["recovered_after_ms"] is not None for k in noticed)  # every session that noticed got new hands
        # a check fails only where the hands died unnoticed after the work was done, taking that work along
        assert set(found.failed_checks) <= found.unnoticed, found.failures
        assert all("SandboxLost" in why for why in found.failed_checks.values()), found.failures
    else:
        assert found.completed < found.sessions  # the pet dies with its sandbox
