"""The coupled ("pet") baseline: hands before the first token, the session inside them, lost with them."""
from __future__ import annotations

import json

from experiments.results.invariants import check_session
from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.contexts.full import FullContext
from harnesses.coupled import CoupledHarness
from harnesses.decoupled import DecoupledHarness
from harnesses.models.scripted import ScriptedModel
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore
from tests.harnesses.doubles import conversation
from tests.helpers import KillAfter

TASKS = {task.name: (suite, i, task) for suite, i, task in load_suite("smoke")}


async def run(harness_class, task, provider):
    store = MemoryStore()
    harness = harness_class(store, ScriptedModel(policy_book()), provider, FullContext())
    record = await run_task(store, harness, provider, *TASKS[task])
    return store, record, await store.events(record.session_id)


async def test_hands_come_before_the_first_model_call_even_for_a_question(tmp_path):
    provider = LocalSandboxProvider(root=str(tmp_path))
    _, record, events = await run(CoupledHarness, "arithmetic", provider)
    types = [e.type for e in events]
    assert record.verdict.success and types.index("sandbox.provisioned") < types.index("model.response")
    _, _, decoupled = await run(DecoupledHarness, "arithmetic", provider)
    assert "sandbox.provisioned" not in [e.type for e in decoupled]  # the difference the seed names
    await provider.close()


async def test_the_session_is_written_into_the_sandbox_and_the_loop_is_the_same(tmp_path):
    provider, store = LocalSandboxProvider(root=str(tmp_path / "coupled")), MemoryStore()
    suite, instance, task = TASKS["fix_bug"]
    sid = await store.create_session(task.meta(suite, instance))
    await store.append(sid, [Event("user.message", {"text": task.prompt})], expect=1)
    outcome = await CoupledHarness(store, ScriptedModel(policy_book()), provider, FullContext()).wake(sid)
    events = await store.events(sid)
    inside = sorted((tmp_path / "coupled" / outcome.sandbox_id / ".session").iterdir())
    assert [json.loads(p.read_text())["type"] for p in inside] == [e.type for e in events]
    other = LocalSandboxProvider(root=str(tmp_path / "decoupled"))
    _, _, decoupled = await run(DecoupledHarness, "fix_bug", other)
    assert conversation(events) == conversation(decoupled)
    await provider.close()
    await other.close()


async def close_all(provider) -> None:
    for sandbox in provider._provisioned:
        await sandbox.close()


async def test_losing_the_sandbox_loses_the_coupled_session_but_not_the_decoupled_one(tmp_path):
    for harness_class, survives in ((CoupledHarness, False), (DecoupledHarness, True)):
        provider, store = LocalSandboxProvider(root=str(tmp_path / harness_class.name)), MemoryStore()
        harness = harness_class(store, KillAfter(lambda provider=provider: close_all(provider)), provider, FullContext())
        record = await run_task(store, harness, provider, *TASKS["fix_bug"])
        assert record.verdict.success is survives, (harness_class.name, record.outcome.reason)
        if not survives:
            assert record.outcome.status == "failed" and "PetLost" in record.outcome.reason
        assert check_session(record.session_id, await store.events(record.session_id)) == []  # every call answered
        await provider.close()


async def test_the_first_turn_breakdown_shows_the_provisioning_only_the_coupled_harness_waits_for(tmp_path):
    provider = LocalSandboxProvider(root=str(tmp_path))  # the breakdown's shape: tests/harnesses/test_harness_contract.py
    for harness_class, provisioned in ((CoupledHarness, True), (DecoupledHarness, False)):
        _, _, events = await run(harness_class, "fix_bug", provider)
        first = next(e for e in events if e.type == "model.response")
        assert (first.data["turn_breakdown"]["provision_ms"] > 0) is provisioned
    await provider.close()


class HandsDieAtToolCall:
    """A store through which the session's hands die exactly as a tool.call is logged."""

    def __init__(self, store, provider):
        self.store, self.provider = store, provider

    async def append(self, session_id, events, *, expect=None):
        if any(e.type == "tool.call" for e in events):
            await close_all(self.provider)
        return await self.store.append(session_id, events, expect=expect)

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_a_session_that_fails_mid_call_answers_the_call(tmp_path):
    provider, store = LocalSandboxProvider(root=str(tmp_path)), MemoryStore()
    harness = CoupledHarness(HandsDieAtToolCall(store, provider), ScriptedModel(policy_book()), provider, FullContext())
    record = await run_task(store, harness, provider, *TASKS["greeting"])
    events = await store.events(record.session_id)
    assert record.outcome.status == "failed" and "PetLost" in record.outcome.reason
    closing = next(e for e in events if e.type == "tool.result")
    assert closing.data["is_error"] and closing.data["output"].startswith("not completed: the session failed (PetLost")
    assert [e.type for e in events][-2:] == ["tool.result", "session.failed"]
    assert check_session(record.session_id, events) == []
    await provider.close()
