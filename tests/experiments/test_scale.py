"""experiment=scale's parts: open-loop arrivals, the emulator in a process of its own, and the load a run
records (overhead per model call, in-flight sessions, memory) and reports."""
from __future__ import annotations

import gc

import pytest

from experiments.run.load import startup_frozen
from experiments.report.main import report
from experiments.report.load import load_table
from experiments.results.tables import read_table
from experiments.run.runner import poisson_arrivals
from harnesses.base import ModelRequest
from harnesses.models.emulator import EmulatorModel
from tests.experiments.cli.test_cli import harnesslab


def test_arrivals_are_seeded_poisson_or_all_at_once():
    arrivals = poisson_arrivals(2000, 100.0, seed=3)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert arrivals == poisson_arrivals(2000, 100.0, seed=3) != poisson_arrivals(2000, 100.0, seed=4)
    assert arrivals[0] == 0 and all(gap >= 0 for gap in gaps)
    assert 0.009 < sum(gaps) / len(gaps) < 0.011  # a mean gap of 1 / rate
    assert poisson_arrivals(3, None, seed=0) == [0.0, 0.0, 0.0]


def test_while_sessions_run_what_the_process_held_before_is_out_of_the_collectors_sight():
    held = [["loaded before the sessions"]]
    with startup_frozen():
        assert gc.get_freeze_count() > 0 and not any(o is held for o in gc.get_objects())
        during = [["made by a session"]]
        assert any(o is during for o in gc.get_objects())
    assert gc.get_freeze_count() == 0 and any(o is held for o in gc.get_objects())  # collected as usual again


async def test_the_emulator_serves_from_a_process_of_its_own():
    model = EmulatorModel("experiments.tasks.policy_book", serve="process", latency={"base_ttft_ms": 5, "jitter_sigma": 0})
    try:
        response = await model.respond(ModelRequest("", [{"role": "user", "content": "hello?"}], [], 64))
        assert response.stop_reason == "end_turn" and response.server_ttft_ms == pytest.approx(5, abs=1)
        assert response.ttft_ms >= response.server_ttft_ms
        assert model.child.pid is not None and model.server is None
        rss_mb, cpu_s = model.server_usage()
        assert 10 < rss_mb < 1024 and 0 < cpu_s < 60
    finally:
        await model.close()
    assert model.child.process.poll() is not None  # stopped with the model


@pytest.mark.parametrize("options, message", [
    ({"serve": "thread"}, "model.serve='thread'; valid: in_process, process"),
    ({"serve": "process", "policies": lambda messages: None}, "needs model.policies as an import path"),
    ({"policies": "experiments.tasks.no_such_book"}, "not an importable function"),
])
async def test_bad_emulator_options_say_what_is_valid(options, message):
    with pytest.raises(ValueError, match=message):
        model = EmulatorModel(**{"policies": "experiments.tasks.policy_book", **options})
        await model.respond(ModelRequest("", [{"role": "user", "content": "hi"}], [], 8))


@pytest.mark.slow
def test_a_small_scale_run_records_its_load_and_reports_it(tmp_path):
    done = harnesslab("run", "experiment=scale", "hydra.mode=RUN", "tasks.repeat=13", "run.arrivals_per_s=100", "run.concurrency=60",
                      "model.latency.base_ttft_ms=300", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "104/104 sessions succeeded" in done.stdout and "load: 104 sessions (" in done.stdout
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    [load] = read_table([results], "load").to_dict("records")
    assert load["sessions"] == 104 and load["failed"] == 0 and 1 < load["peak_sessions"] <= 60
    assert load["model_calls"] == len(read_table([results], "model_calls")) and load["turns_per_s"] > 0
    assert 50 < load["peak_rss_mb"] < 2048 and 10 < load["model_server_rss_mb"] < 1024 and load["model_server_cpu_s"] > 0
    calls = read_table([results], "model_calls")
    assert calls["overhead_ms"].notna().all() and (calls["overhead_ms"] >= 0).all()
    assert (calls["server_ttft_ms"] > 0).all() and (calls["ttft_ms"] >= calls["server_ttft_ms"]).all()
    text = report(results)
    assert "Load: what the harness adds" in text and "worst cell: overhead p95" in text
    [row] = load_table([results]).to_dict("records")
    first = calls[calls["call"] == 1]["overhead_ms"]
    assert len(first) == 104 and row["first_call_p95_ms"] == pytest.approx(first.quantile(0.95))
