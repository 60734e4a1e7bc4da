"""The ContextStrategy contract, checked on every strategy: each one of the config group (configs/context/*.yaml,
built as `harnesslab run context=NAME` builds it) and the test folder's own. A strategy of yours runs the same
suite by adding one line to OWN below (its `_target_` and options).

Each builds the context of every prefix of real logs: the smoke and long-horizon tasks run through the
emulator with every strategy, so the logs hold each one's own events (recall and memory calls, compactions).
Each strategy's own rules are checked in test_context_rules.py.
"""
from __future__ import annotations

import asyncio
import copy
import functools
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from experiments.run.job import compose_config
from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.decoupled import DecoupledHarness
from harnesses.messages import events_to_messages, without_cache_marks
from harnesses.models.emulator import EmulatorModel
from sandboxes.local import LocalSandboxProvider
from sandboxes.tools import TOOLS
from stores.memory import MemoryStore

GROUP = sorted(p.stem for p in (Path(__file__).parents[2] / "configs" / "context").glob("*.yaml"))
OWN = {"first_and_last": {"_target_": "tests.harnesses.custom_context.FirstAndLastContext", "first": 1, "last": 3},
       "keep_ends": {"_target_": "examples.my_context.KeepEnds", "last": 3}}  # docs/guides/context-strategy.md
LOGGED = [("smoke", "find_needle"), ("long_horizon", "needles_20")]  # each run with every strategy
FAST = {"base_ttft_ms": 1, "prefill_ms_per_1k_tokens": 0, "output_tokens_per_s": 0, "jitter_sigma": 0}
BLOCKS = {"user": {"text", "tool_result"}, "assistant": {"text", "tool_use", "compaction"}}  # compaction: server_compaction's


def strategy(name: str):
    """A fresh strategy, as the config group builds it (or as OWN says)."""
    return instantiate(OWN.get(name) or _group_config(name))


@functools.cache
def _group_config(name: str) -> DictConfig:
    return compose_config([f"context={name}", "store=memory"]).context


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> list[list]:
    """The logs of the LOGGED tasks run through the emulator with every strategy (a window runs out of turns)."""
    return asyncio.run(_run_all(tmp_path_factory.mktemp("logs")))


async def _run_all(root: Path) -> list[list]:
    store, hands, model = MemoryStore(), LocalSandboxProvider(root=str(root)), EmulatorModel(policy_book(), latency=FAST)
    await model.start()
    try:
        logs = []
        for name in [*GROUP, *OWN]:
            harness = DecoupledHarness(store, model, hands, strategy(name), max_turns=40)
            for suite, task in LOGGED:
                record = await run_task(store, harness, hands, *load_suite(suite, only=[task])[0])
                logs.append(await store.events(record.session_id))
    finally:
        await model.close()
        await hands.close()
    return logs


def test_the_suite_covers_the_whole_config_group():
    assert {"full", "window", "clear_tool_results", "compaction", "recall", "memory"} <= set(GROUP)


@pytest.mark.parametrize("name", [*GROUP, *OWN])
async def test_every_prefix_of_every_log_gives_a_conversation_the_messages_api_takes(name, logs):
    context = strategy(name)
    for log in logs:
        task = next(e.data["text"] for e in log if e.type == "user.message")
        for end in range(next(i for i, e in enumerate(log) if e.type == "user.message") + 1, len(log) + 1):
            prefix = log[:end]  # every log a harness could wake on
            check_conversation(await context.build(prefix), task, events_to_messages(prefix))
        before = copy.deepcopy([e.data for e in log])
        assert await strategy(name).build(log) == await context.build(log)  # a pure function of the log: no state
        assert [e.data for e in log] == before, "build changed the log"


def test_a_strategys_own_tools_do_not_shadow_the_sandboxs():
    for name in [*GROUP, *OWN]:
        assert not {t.name for t in strategy(name).tools} & set(TOOLS), name


def check_conversation(messages: list[dict], task: str, whole: list[dict]) -> None:
    """What the Messages API needs, and what every strategy keeps: the task first and the latest turn as is."""
    first = messages[0]["content"][0]
    assert messages[0]["role"] == "user" and (first["type"], first.get("text")) == ("text", task)
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2) + ["user"] * (len(messages) % 2)
    for message in messages:
        kinds = [b["type"] for b in message["content"]]
        assert kinds and set(kinds) <= BLOCKS[message["role"]], kinds
        assert kinds == sorted(kinds, key=lambda kind: kind != "tool_result")  # tool results come first
    uses = [b["id"] for m in messages for b in m["content"] if b["type"] == "tool_use"]
    assert len(uses) == len(set(uses))
    for asked, answered in zip(messages, messages[1:]):
        if asked["role"] == "assistant":  # each result right after the call that asked for it, and only there
            results = [b["tool_use_id"] for b in answered["content"] if b["type"] == "tool_result"]
            assert sorted(results) == sorted(b["id"] for b in asked["content"] if b["type"] == "tool_use")
    assert not any(b["type"] == "tool_result" for b in messages[0]["content"])
    marks = [b for m in messages for b in m["content"] if "cache_control" in b]
    assert len(marks) == 1 and "cache_control" in messages[-1]["content"][-1]  # one breakpoint, at the end
    assert without_cache_marks(messages[-1:]) == without_cache_marks(whole[-1:])  # the latest turn, as the log has it
