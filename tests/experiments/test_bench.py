"""The benchmarks run (their numbers are reported, never asserted: the machines are noisy)."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_harness_benchmark_runs_and_measures_every_turn():
    done = subprocess.run([sys.executable, "-m", "experiments.bench", "--quick", "--only", "harness"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["memory"], ["sqlite"])]
    assert [row[0] for row in rows] == ["memory", "sqlite"] and all(int(row[3]) == 57 for row in rows)  # 3 x 19 turns
