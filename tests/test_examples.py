"""Every example of examples/ (one per guide of docs/guides/) runs for real: a short `harnesslab run` with the part,
from the project root (the CLI imports a user's parts from the folder it runs in) with the examples' config folder
on Hydra's search path, as the guides show."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESSLAB = Path(sys.executable).with_name("harnesslab")
FAST = ["model=scripted", "store=memory"]  # in-process answers: seconds per run
SEARCH = "hydra.searchpath=[file://examples/configs]"

RUNS = {
    "context": ([SEARCH, "context=keep_ends", "tasks.only=[find_needle,rename_function]", *FAST], "1/1", "keep_ends"),
    "model": ([SEARCH, "model=counting", "store=memory", "tasks.only=[greeting,fix_bug]"], "counting model: ", "counting"),
    "harness": ([SEARCH, "harness=logging", "tasks.only=[greeting]", *FAST], "completed end_turn", "harness=logging"),
    "sandbox": ([SEARCH, "sandbox=counting", "tasks.only=[greeting,fix_bug]", *FAST], "2 provisioned", "counting"),
    "store": (["store._target_=examples.my_store.CountingStore", "model=scripted", "tasks.only=[greeting]"],
              "event(s) appended", "CountingStore"),
    "task": (["tasks._target_=examples.my_task.load_suite", "~tasks.name", "model=scripted", "store=memory",
              "model.policies._target_=examples.my_task.policy_book"], "shout", "tasks="),
}


@pytest.mark.parametrize("part", sorted(RUNS))
def test_example_runs(part, tmp_path):
    overrides, printed, header = RUNS[part]
    done = subprocess.run([str(HARNESSLAB), "run", *overrides, f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, capture_output=True, text=True,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = next(line for line in done.stdout.splitlines() if "sessions succeeded" in line)
    passed, total = summary.split(" ", 1)[0].split("/")
    assert passed == total, output
    assert printed in output and header in output, output
