"""The Harness contract, run on every harness: each config under configs/harness/, and those named in OWN.

What every harness must do: a log cut after any tool.result, woken again by a new brain, completes as the
uncut run did, with no tool call made twice; a tool.call is logged before the tool runs; time to first token is
recorded; a tool's error is logged as data (an is_error result the model reads), not raised.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.results.invariants import check_session
from experiments.run.runner import check, run_task
from experiments.tasks import load_suite, policy_book
from harnesses.contexts.full import FullContext
from harnesses.models.scripted import ScriptedModel
from sandboxes.base import Setup
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore
from stores.sqlite import SqliteStore
from tests.harnesses.doubles import Crash, CrashAfterToolResult, Responses, start_session

# Your own harness: a config under configs/harness/ is found already; a class of yours, by its import path, goes here.
OWN: list[str] = ["examples.my_harness.LoggingHarness"]  # docs/guides/harness.md

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "harness"
HARNESSES = sorted(path.stem for path in CONFIGS.glob("*.yaml")) + OWN
SMOKE = {task.name: (suite, i, task) for suite, i, task in load_suite("smoke")}
TOOL_TASKS = sorted(name for name, (_, _, task) in SMOKE.items() if name != "arithmetic")


def calls(events: list[Event]) -> list[tuple]:
    """The tool calls a log made, in order. (Their outputs may differ between runs: the coupled harness keeps the
    session in the workspace, where a listing shows it.)"""
    return [(e.data["name"], e.data["input"]) for e in events if e.type == "tool.call"]


def build(harness: str, store, provider, model=None):
    """The harness a config name or import path names, with the rest of its parts given."""
    node = OmegaConf.create({"_target_": harness}) if "." in harness else OmegaConf.load(CONFIGS / f"{harness}.yaml")
    return instantiate(node, store=store, model=model or ScriptedModel(policy_book()), sandboxes=provider, context=FullContext())


@pytest.mark.parametrize("harness", HARNESSES)
@pytest.mark.parametrize("name", TOOL_TASKS)
async def test_a_new_brain_finishes_a_session_cut_after_any_tool_result(harness, name, tmp_path):
    suite, instance, task = SMOKE[name]
    clean_store, clean_hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path / "clean"))
    clean = await run_task(clean_store, build(harness, clean_store, clean_hands), clean_hands, suite, instance, task)
    expected = calls(await clean_store.events(clean.session_id))
    await clean_hands.close()
    cuts = len(expected)
    assert cuts >= 1

    for n in range(1, cuts + 1):
        db, hands_root = tmp_path / f"cut{n}.sqlite", str(tmp_path / f"hands{n}")
        store, hands = SqliteStore(db), LocalSandboxProvider(root=hands_root)
        sid = await start_session(store, task)
        with pytest.raises(Crash):
            await build(harness, CrashAfterToolResult(store, n), hands).wake(sid)
        await store.close()  # everything the first brain held is dropped; only disk remains

        store, hands = SqliteStore(db), LocalSandboxProvider(root=hands_root)
        outcome = await build(harness, store, hands).wake(sid)
        events = await store.events(sid)
        assert outcome.status == "completed", (n, outcome)
        assert calls(events) == expected, f"cut after tool.result #{n}"  # no tool call twice, none lost
        ids = [e.data["tool_use_id"] for e in events if e.type == "tool.call"]
        assert len(ids) == len(set(ids)) and outcome.final_text == clean.outcome.final_text
        assert check_session(sid, events) == []
        assert [e.type for e in events].count("harness.woke") == 2
        assert [e.type for e in events].count("sandbox.provisioned") == 1  # the new brain reattached
        verdict = await check(task, outcome, hands, Setup.from_meta(task.meta(suite)["setup"]))
        assert verdict.success, (n, verdict.detail)
        await store.close()
        await hands.close()


class Witness(LocalSandboxProvider):
    """Hands that note, as each tool call starts to run, whether the log already holds that call's tool.call."""

    def __init__(self, store, **options):
        super().__init__(**options)
        self.store, self.logged_first = store, []

    async def provision(self):
        sandbox = await super().provision()
        execute = sandbox.execute

        async def noting(name, input, key=None):
            if key is not None:  # a model's call (the harness's own writes, as the coupled design's, have none)
                session_id, use_id = key.rsplit(":", 1)
                calls = [e.data["tool_use_id"] for e in await self.store.events(session_id) if e.type == "tool.call"]
                self.logged_first.append(use_id in calls)
            return await execute(name, input, key)

        sandbox.execute = noting
        return sandbox


@pytest.mark.parametrize("harness", HARNESSES)
async def test_a_tool_call_is_logged_before_the_tool_runs(harness, tmp_path):
    store = MemoryStore()
    provider = Witness(store, root=str(tmp_path))
    record = await run_task(store, build(harness, store, provider), provider, *SMOKE["fix_bug"])
    assert record.verdict.success, record.verdict.detail
    assert len(provider.logged_first) >= 2 and all(provider.logged_first)
    await provider.close()


@pytest.mark.parametrize("harness", HARNESSES)
async def test_time_to_first_token_is_recorded_for_every_call_and_the_turn(harness, tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model = ScriptedModel(policy_book(), ttft_ms=5.0)
    record = await run_task(store, build(harness, store, provider, model), provider, *SMOKE["fix_bug"])
    first, *rest = [e.data for e in await store.events(record.session_id) if e.type == "model.response"]
    assert rest and all(r["latency_ms"] >= r["ttft_ms"] >= 5.0 for r in [first, *rest])
    assert first["turn_ttft_ms"] >= first["ttft_ms"] and all("turn_ttft_ms" not in r for r in rest)
    parts = first["turn_breakdown"]
    assert set(parts) == {"queue_ms", "provision_ms", "context_ms", "model_ttft_ms", "other_ms"}
    assert parts["model_ttft_ms"] == first["ttft_ms"] and abs(sum(parts.values()) - first["turn_ttft_ms"]) < 0.01
    await provider.close()


@pytest.mark.parametrize("harness", HARNESSES)
async def test_a_tools_error_is_logged_as_data_and_the_session_goes_on(harness, tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model = Responses(
        [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "missing.txt"}},
         {"type": "tool_use", "id": "toolu_2", "name": "teleport", "input": {}}],
        [{"type": "text", "text": "both failed"}],
    )
    sid = await store.create_session({"system": ""})
    await store.append(sid, [Event("user.message", {"text": "go"})], expect=1)
    outcome = await build(harness, store, provider, model).wake(sid)
    assert (outcome.status, outcome.final_text) == ("completed", "both failed")
    results = {e.data["tool_use_id"]: e.data for e in await store.events(sid) if e.type == "tool.result"}
    assert results["toolu_1"]["is_error"] and "missing.txt" in results["toolu_1"]["output"]
    assert results["toolu_2"]["is_error"] and "'teleport' is not offered" in results["toolu_2"]["output"]
    shown = [b for b in model.requests[1].messages[-1]["content"] if b["type"] == "tool_result"]
    assert [(b["tool_use_id"], b["is_error"]) for b in shown] == [("toolu_1", True), ("toolu_2", True)]
    await provider.close()
