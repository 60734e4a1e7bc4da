"""Every context strategy builds only requests the Messages API takes (issue 21, item 8).

Each strategy of the config group (configs/context/*.yaml, built as `harnesslab run context=NAME` builds it) runs
every smoke and long-horizon task through the emulator with strict validation; any request it refuses fails the test
with the rule, its message and the request's shape. A strategy found at fault is marked xfail(strict=True) with the
rule: the mark fails once the strategy is fixed, so it is taken off then.

With extended thinking on (`model.thinking`), every answer starts with a signed thinking block, and every strategy must
pass the one of the tool turn it answers back unchanged (rules thinking_on_tool_turn, thinking_blocks_genuine); it
may drop older ones (https://docs.claude.com/en/docs/build-with-claude/extended-thinking#preserving-thinking-blocks).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Sequence

import pytest
from hydra.utils import instantiate

from experiments.run.job import compose_config
from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.base import ContextStrategy
from harnesses.decoupled import DecoupledHarness
from harnesses.emulator.server import Rejection
from harnesses.messages import events_to_messages
from harnesses.models.emulator import EmulatorModel
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore

GROUP = sorted(p.stem for p in (Path(__file__).parents[2] / "configs" / "context").glob("*.yaml"))
SUITES = ("smoke", "long_horizon")
FAST = {"base_ttft_ms": 1, "prefill_ms_per_1k_tokens": 0, "output_tokens_per_s": 0, "jitter_sigma": 0}
AT_FAULT: dict[str, str] = {}  # strategy -> the rule its requests break (see the module docstring)
THINKING = {"type": "enabled", "budget_tokens": 1024}


@functools.cache
def _config(name: str) -> Any:
    return compose_config([f"context={name}", "store=memory"]).context


def test_the_group_is_the_whole_config_group():
    assert {"full", "window", "clear_tool_results", "compaction", "recall", "memory"} <= set(GROUP)


@pytest.mark.slow
@pytest.mark.parametrize("thinking", [None, THINKING], ids=["plain", "thinking"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=AT_FAULT[n])) if n in AT_FAULT
                                  else n for n in GROUP])
async def test_every_request_a_strategy_builds_is_one_the_api_takes(name, thinking, tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model = EmulatorModel(policy_book(), latency=FAST, thinking=thinking)  # strict, as by default
    await model.start()
    try:
        harness = DecoupledHarness(store, model, hands, instantiate(_config(name)), max_turns=200)
        records = [await run_task(store, harness, hands, *chosen) for suite in SUITES for chosen in load_suite(suite)]
        refused, served = list(model.server.rejections), model.server.served
    finally:
        await model.close()
        await hands.close()
    assert served["requests"] > 0
    assert not refused, f"context={name}: {served['rejected']} request(s) refused; the first:\n" + describe(refused[0])
    if thinking:  # the answers thought (after a server compaction's block, if any), and every turn passing it back was taken
        firsts = [next((b["type"] for b in e.data["content"] if b["type"] != "compaction"), None)
                  for r in records for e in await store.events(r.session_id) if e.type == "model.response"]
        assert set(firsts) - {None} <= {"thinking", "redacted_thinking"} and firsts.count("thinking") > len(records), firsts[:5]


class DropsOldResults(ContextStrategy):
    """A broken strategy, as other harnesses have shipped one: it keeps the calls but drops all but the last results."""

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        messages = events_to_messages(events)
        last = max(i for i, m in enumerate(messages) if m["role"] == "user")
        return [{**m, "content": [b for b in m["content"] if b["type"] != "tool_result"] or [{"type": "text", "text": "(results dropped)"}]}
                if m["role"] == "user" and 0 < i < last else m for i, m in enumerate(messages)]


async def test_a_strategy_that_breaks_a_rule_is_caught(tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model = EmulatorModel(policy_book(), latency=FAST)
    await model.start()
    try:
        harness = DecoupledHarness(store, model, hands, DropsOldResults(), max_turns=20)
        record = await run_task(store, harness, hands, *load_suite("smoke", only=["fix_bug"])[0])
        [refused] = list(model.server.rejections)
    finally:
        await model.close()
        await hands.close()
    assert record.outcome.status == "failed" and "400 invalid_request_error" in record.outcome.reason
    assert refused.rule == "tool_uses_answered"
    assert "rule tool_uses_answered: messages.1: `tool_use` ids were found without `tool_result` blocks" in describe(refused)
    assert "  2 user: text(\"(results dropped)\")" in describe(refused)


def describe(rejection: Rejection) -> str:
    """The rule, the API's message, and the request's shape: each message's role and block types."""
    body = rejection.body or {}
    shape = [f"  {i} {m.get('role')}: " + (", ".join(_block(b) for b in m["content"]) if isinstance(m.get("content"), list) else "text")
             for i, m in enumerate(body.get("messages") or [])]
    tools = [t.get("name") for t in body.get("tools") or []]
    return "\n".join([f"rule {rejection.rule}: {rejection.message}", f"tools: {tools}", "messages:", *shape])


def _block(block: dict[str, Any]) -> str:
    kind = block.get("type")
    detail = block.get("id") or block.get("tool_use_id") or json.dumps(block.get("text", ""))[:40]
    return f"{kind}({detail})"
