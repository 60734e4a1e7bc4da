"""Runs under real faults (`harnesslab run faults=...`): supervised worker processes SIGKILLed, sandboxes
destroyed under tool calls, PostgreSQL restarted, model errors; then every check of the run."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from omegaconf import OmegaConf

from experiments.faults.kinds import ModelFaults
from experiments.paths import PROJECT_ROOT
from experiments.run.job import compose_config
from experiments.faults.lab import Lab
from experiments.faults.runner import _worker_command
from experiments.faults.findings import Recovery
from experiments.results.tables import read_table
from experiments.workers.worker import seed_model_faults
from harnesses.emulator.service import FaultProfile
from tests.experiments.cli.test_cli import harnesslab
from tests.stores.test_durable import require_postgres_server

SCRIPTED = ["model=scripted", "model.ttft_ms=60", "model.ms_per_output_token=1"]
QUICK = [*SCRIPTED, "tasks.repeat=2", "run.concurrency=10"]


def fault_run(tmp_path: Path, *overrides: str, model: list[str] = SCRIPTED, env: dict | None = None,
              ) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Run with faults; returns the printed summary, and the sessions and faults tables."""
    done = harnesslab("run", *model, "tasks.repeat=2", "run.concurrency=10", *overrides, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    return done.stdout, read_table([results], "sessions"), read_table([results], "faults")


def within_binomial_bound(injected: int, trials: int, rate: float, sigmas: float = 5.0) -> bool:
    """Wide on purpose (5 standard deviations, plus one): a correct rate cannot miss it by chance."""
    return abs(injected - rate * trials) <= sigmas * math.sqrt(trials * rate * (1 - rate)) + 1


def assert_injected_as_reported(out: str, faults: pd.DataFrame, results: list[Path], asked: list[str]) -> None:
    """The summary and the recovery table count the faults that happened (the faults table's rows), per kind."""
    counts = ", ".join(f"{kind} {(faults['kind'] == kind).sum()}" for kind in asked)
    assert f"faults injected: {len(faults)} ({counts}); asked for: {', '.join(asked)}" in out, out
    [recovery] = read_table(results, "recovery").to_dict("records")
    assert recovery["injected"] == len(faults) and recovery["injected_by_kind"] == counts


def workers_config(model_faults: ModelFaults) -> dict:
    """The workers' config as a fault run writes it (its model part)."""
    workers_cfg = {"model": OmegaConf.to_container(compose_config(["model=emulator", "store.path=run.sqlite"]).model, resolve=True)}
    model_faults.configure_workers(workers_cfg)
    return workers_cfg


def worker_fault_profile(workers_cfg: dict, slot: str, incarnation: int, run_seed: int) -> FaultProfile:
    """The fault profile the emulator of a fault run's worker process gets, seeded from the `--fault-seed`
    of the command the supervisor starts that process with."""
    lab = Lab(Path("run"), store=None, sandboxes=None, store_server=None, supervisor=SimpleNamespace(kills=[]))
    command = _worker_command(lab, [], run_seed)(slot, incarnation)
    cfg = OmegaConf.create(workers_cfg)
    seed_model_faults(cfg, int(command[command.index("--fault-seed") + 1]))
    return FaultProfile(**cfg.model.faults)


def test_each_worker_incarnation_draws_a_model_fault_stream_of_its_own():
    """Workers killed after a few requests each still meet model faults at the configured rate (all of
    them replaying one seed's first draws met none)."""
    model_faults, requests_each = ModelFaults(), 5
    rate = model_faults.rate_limit + model_faults.overloaded + model_faults.server_error + model_faults.disconnect
    workers_cfg = workers_config(model_faults)
    profiles = [worker_fault_profile(workers_cfg, slot, incarnation, run_seed=3) for slot in ("w0", "w1") for incarnation in range(40)]
    assert len({profile.seed for profile in profiles}) == len(profiles)
    injected = 0
    for profile in profiles:
        rng = profile.stream()
        injected += sum(profile.draw(rng) is not None for _ in range(requests_each))
    assert within_binomial_bound(injected, requests_each * len(profiles), rate), injected
    again, next_run = (worker_fault_profile(workers_cfg, "w0", 1, run_seed) for run_seed in (3, 4))
    assert again == profiles[1] and next_run != profiles[1]  # seeded by the run, too


def test_the_summary_counts_what_was_injected_not_what_was_asked_for():
    found = Recovery(asked=["harness_kill", "model_faults"],
                     rows=[{"kind": "harness_kill", "recovered_after_ms": 900.0, "since_ready_ms": 8.0}] * 3)
    summary = found.summary()
    assert "faults injected: 3 (harness_kill 3, model_faults 0); asked for: harness_kill, model_faults" in summary
    assert "  model_faults: 0: asked for, but none happened" in summary
    assert found.table_row()["injected"] == 3 and found.table_row()["injected_by_kind"] == "harness_kill 3, model_faults 0"


def assert_nothing_lost(out: str, sessions: pd.DataFrame) -> None:
    assert (sessions["status"] == "completed").all() and sessions["success"].all(), sessions[~sessions["success"]]["check_detail"]
    assert "invariants: 0 violation(s)" in out
    assert " checked, 0 lost" in out and "acknowledged events: 0 checked" not in out
    assert "side-effect journal: 0 duplicate start(s) of non-idempotent tools" in out


def test_a_users_own_store_runs_under_faults_as_it_declares_itself(tmp_path):
    """The runner asks the store whether and how its workers share it (examples/my_store.py), no more."""
    own = ["store=sqlite", "store._target_=examples.my_store.CountingStore"]
    out, sessions, faults = fault_run(tmp_path, *own, "faults=harness_kill", "faults.harness_kill.count=2",
                                      env={"PYTHONPATH": str(PROJECT_ROOT)})
    assert_nothing_lost(out, sessions)
    assert len(faults) == 2 and "store=examples.my_store.CountingStore" in out
    assert list(tmp_path.glob("outputs/*/*/counted.sqlite")), "the workers did not share the store where it said"


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


def model_attempts(tmp_path: Path) -> int:
    """Requests to the emulator that a logged answer records: each answer, and the failed attempts before it."""
    calls = read_table(tmp_path.glob("outputs/*/*/results.duckdb"), "model_calls")
    return len(calls) + int(calls["retries"].sum())


PATIENT_EMULATOR = ["model=emulator", "model.max_attempts=10"]  # no call gives up on a run of bad draws (0.24^10: never)


@pytest.mark.slow
def test_model_faults_under_workers_are_injected_at_the_configured_rate(tmp_path):
    out, sessions, faults = fault_run(tmp_path, "faults=model_faults", "tasks.repeat=4", "run.seed=5", model=PATIENT_EMULATOR)
    assert_nothing_lost(out, sessions)
    assert within_binomial_bound(len(faults), model_attempts(tmp_path), rate=0.15), (len(faults), model_attempts(tmp_path))
    assert_injected_as_reported(out, faults, list(tmp_path.glob("outputs/*/*/results.duckdb")), ["model_faults"])


@pytest.mark.slow
def test_faults_compose_and_model_errors_are_retried(tmp_path):
    """With workers SIGKILLed every few requests (the default 20 kills), model faults still come at their rate
    (about 30 of some 125 attempts; a worker replaying one seed's first draws met about one)."""
    rates = {"rate_limit": 0.08, "overloaded": 0.08, "disconnect": 0.08}
    out, sessions, faults = fault_run(tmp_path, "faults=[harness_kill,model_faults]", "run.seed=5",
                                      *(f"faults.model_faults.{kind}={rate}" for kind, rate in rates.items()), model=PATIENT_EMULATOR)
    assert_nothing_lost(out, sessions)
    assert set(sessions["faults"]) == {"harness_kill+model_faults"}
    model = faults[faults["kind"] == "model_faults"]
    assert len(model) > 0, "no model fault between the worker kills"
    attempts = model_attempts(tmp_path)
    assert within_binomial_bound(len(model), attempts, rate=sum(rates.values())), (len(model), attempts)
    assert model["target"].str.contains("429 rate_limit_error|529 overloaded_error|connection|stream cut").all(), set(model["target"])
    assert model["recovered_after_ms"].notna().all()
    assert_injected_as_reported(out, faults, list(tmp_path.glob("outputs/*/*/results.duckdb")), ["harness_kill", "model_faults"])


@pytest.mark.parametrize("overrides, expected", [
    (["faults=nope"], "Available options in 'faults'"),
    (["faults=harness_kill", "faults.harness_kill.at=lunch"], "valid: random, model_stream, tool_running, append"),
    (["faults=harness_kill", "store=memory"], "use store=sqlite or store=postgres"),
    (["faults=model_faults"], "use model=emulator"),  # QUICK uses the scripted model
    (["faults=store_restart"], "SqliteStore runs on none of the run's own: use store=postgres"),
])
def test_a_wrong_fault_setup_is_named(tmp_path, overrides, expected):
    done = harnesslab("run", *QUICK, *overrides, cwd=tmp_path)
    assert done.returncode != 0 and expected in done.stdout + done.stderr, done.stderr[-2000:]
