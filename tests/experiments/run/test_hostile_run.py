"""A hostile sandbox suite, run as `harnesslab run` runs it: a scripted model makes every hostile tool call of
docs/bounds.md (a deep tree, a FIFO, names that are not UTF-8, a NUL byte, odd ranges, nesting, a huge file, a
detached process, writes into the executor's channel), on each backend. The run still writes complete results for every session, nothing it started
outlives it, and the harness's peak RSS stays bounded."""
from __future__ import annotations

import json
import os
import random
import signal
import uuid
from typing import Any

import pytest

import experiments.tasks
from experiments.run.job import compose_config, run_job
from experiments.results.tables import read_table
from experiments.tasks.base import Task, Verdict
from harnesses.models.offline_brain import Call, Conversation, Reply
from tests.sandboxes.test_hostile import nested, processes_with, reset_peak_rss, rss_mb

SLEEP = f"{4000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10 ** 6}"  # a detached process's marker
STEPS: dict[str, list[tuple[str, Any]]] = {
    "deep_tree": [("bash", {"command": "for i in $(seq 11); do mkdir -p " + "d/" * 100 + " && cd " + "d/" * 100 + "; done"}),
                  ("list_files", {})],
    "fifo": [("bash", {"command": "mkfifo pipe"}), ("read_file", {"path": "pipe"}),
             ("write_file", {"path": "pipe", "content": "x"}), ("edit_file", {"path": "pipe", "old_string": "a", "new_string": "b"})],
    "odd_names": [("bash", {"command": r"touch $'caf\xe9' && mkdir $'d\xff' && touch $'d\xff/x'"}), ("list_files", {})],
    "odd_input": [("bash", {"command": "echo a\x00b"}), ("write_file", {"path": "f", "content": "1\n2\n3\n"}),
                  ("read_file", {"path": "f", "offset": 2.0}), ("read_file", {"path": "f", "offset": 2 ** 63}),
                  ("write_file", {"path": nested(40), "content": "x"})],
    "huge_file": [("bash", {"command": "truncate -s 700M big"}), ("read_file", {"path": "big"}),
                  ("read_file", {"path": "big", "offset": 1, "limit": 3}),
                  ("edit_file", {"path": "big", "old_string": "\x00", "new_string": "x"})],
    "detached": [("bash", {"command": f"setsid sleep {SLEEP} & nohup setsid sh -c 'sleep {SLEEP}' > /dev/null 2>&1 &"}),
                 ("bash", {"command": "echo alive"})],
    "channel": [("bash", {"command": "echo 'not json' > /proc/$PPID/fd/1; head -c 8M /dev/zero > /proc/$PPID/fd/1; true"}),
                ("bash", {"command": "echo alive"})],  # on docker the parent is the executor: its stdout, the channel
}
PEAK_RSS_GROWTH_MB = 256  # generous: a run of seven sessions; before the bounds, the huge file alone cost 2.7 GB


def hostile(name: str, steps: list[tuple[str, Any]]):
    """A task whose policy makes `steps`, then replies with each one's outcome; it succeeds if every step ran."""
    def build(rng: random.Random) -> Task:
        def policy(c: Conversation):
            if len(c.exchanges) < len(steps):
                return Call(*steps[len(c.exchanges)])
            return Reply(json.dumps([f"{e.name}: {'error' if e.is_error else 'ok'}" for e in c.exchanges]))

        async def check(ctx) -> Verdict:
            return Verdict(ctx.final_text.count(": ") == len(steps), ctx.final_text[-300:])

        return Task(name, f"Hostile hands {name}: make every call, report what happened.", policy, check)

    build.__name__ = name
    return build


@pytest.fixture
def hostile_suite(monkeypatch):
    real = experiments.tasks.suites
    monkeypatch.setattr(experiments.tasks, "suites", lambda: {**real(), "hostile": [hostile(n, s) for n, s in STEPS.items()]})


@pytest.mark.parametrize("sandbox", ["local", "namespace", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_hostile_suite_runs_to_complete_results_in_bounded_memory(request, hostile_suite, tmp_path, sandbox):
    if sandbox == "docker":
        request.getfixturevalue("docker_image")  # skips (or fails, REQUIRE_DOCKER=1) without an engine
    overrides = ["model=scripted", "store=sqlite", f"store.path={tmp_path / 'sessions.sqlite'}", "tasks.name=hostile",
                 f"sandbox={sandbox}", "sandbox.timeout_s=20"]
    before = reset_peak_rss()
    try:
        results = run_job(compose_config(overrides), tmp_path, {"sandbox": sandbox, "model": "scripted", "store": "sqlite", "tasks": "hostile"})
        grew = rss_mb() - before
        sessions = read_table([results], "sessions").set_index("task")
        calls = read_table([results], "tool_calls")
        assert sorted(sessions.index) == sorted(STEPS) and set(sessions["status"]) == {"completed"}, sessions
        assert sessions["success"].all(), sessions["check_detail"]
        for task, steps in STEPS.items():  # every call answered
            assert (calls["session_id"] == sessions.loc[task, "session_id"]).sum() == len(steps) == sessions.loc[task, "tool_calls"]
        assert read_table([results], "violations").empty
        print(f"\n[{sandbox}] peak RSS growth over the hostile run: {grew:.1f} MB")
        assert grew < PEAK_RSS_GROWTH_MB
        assert processes_with(f"sleep\x00{SLEEP}") == []
    finally:
        for pid in processes_with(f"sleep\x00{SLEEP}"):  # left by a failing run: ours to end
            os.kill(pid, signal.SIGKILL)
