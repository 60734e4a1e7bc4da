"""The benchmarks run (their numbers are reported, never asserted: the machines are noisy), and every target
they print says whether it was met."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from experiments.bench import stores as bench_stores
from experiments.bench.targets import target, verdict

VERDICT = re.compile(r"\(target (<=|>=|=) [^:]+: (met|MISSED|not measured)\)")


def targets_without_a_verdict(output: str) -> list[str]:
    return [line for line in output.splitlines() if "target" in line and not VERDICT.search(line)]


def test_a_measurement_meets_its_target_up_to_the_bound_and_misses_it_beyond():
    assert verdict(50_000, ">=", 50_000) == "met" and verdict(32_000, ">=", 50_000) == "MISSED"
    assert verdict(5, "<=", 5) == "met" and verdict(5.1, "<=", 5) == "MISSED"
    assert verdict(0, "=", 0) == "met" and verdict(3, "=", 0) == "MISSED"
    assert verdict(None, ">=", 1) == verdict(float("nan"), "<=", 1) == "not measured"
    with pytest.raises(ValueError, match="comparison '<': expected one of <=, >=, ="):
        verdict(1, "<", 2)
    assert (target("sqlite group commit, 64 sessions", 32_114.4, ">=", 50_000, " events/s")
            == "sqlite group commit, 64 sessions: 32,114 events/s (target >= 50,000 events/s: MISSED)")
    assert target("memory store, p50", 0.384, "<=", 1, " ms") == "memory store, p50: 0.384 ms (target <= 1 ms: met)"


def test_the_store_benchmark_says_which_targets_it_missed(monkeypatch, capsys):
    rates = {  # events/s by (backend, group commit, sessions): sqlite misses its 50,000, duckdb meets its 20x
        ("memory", True, 1): 900_000.0, ("memory", True, 64): 1_500_000.0,
        ("sqlite", False, 1): 4_000.0, ("sqlite", False, 64): 4_900.0, ("sqlite", True, 1): 3_900.0, ("sqlite", True, 64): 32_000.0,
        ("duckdb", False, 1): 270.0, ("duckdb", False, 64): 275.0, ("duckdb", True, 1): 260.0, ("duckdb", True, 64): 10_300.0,
    }

    async def append_rate(backends, kind, group_commit, sessions, seconds):
        return rates[kind, group_commit, sessions], [0.5, 1.5]

    monkeypatch.setattr(bench_stores, "append_rate", append_rate)
    asyncio.run(bench_stores.report_appends(None, ["memory", "sqlite", "duckdb"], 0.1))
    output = capsys.readouterr().out
    assert "sqlite group commit, 64 sessions: 32,000 events/s (target >= 50,000 events/s: MISSED)" in output
    assert "duckdb group commit / single-event commits, 64 sessions: 37.5x (target >= 20x: met)" in output
    assert "postgres group commit, 64 sessions: - (target >= 20,000 events/s: not measured)" in output
    assert targets_without_a_verdict(output) == []


@pytest.mark.slow
def test_the_harness_benchmark_runs_and_measures_every_turn():
    done = subprocess.run([sys.executable, "-m", "experiments.bench", "--quick", "--only", "harness"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["memory"], ["sqlite"])]
    assert [row[0] for row in rows] == ["memory", "sqlite"] and all(int(row[3]) == 57 for row in rows)  # 3 x 19 turns
    assert "overhead p50, memory store: " in done.stdout and targets_without_a_verdict(done.stdout) == []
