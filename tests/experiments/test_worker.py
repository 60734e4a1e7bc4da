"""Which sessions a worker takes: unowned ones, its slot's, and stale ones; others' live ones it leaves."""
from __future__ import annotations

import asyncio
import time

import pytest

from experiments.acks import AckedStore, lost_events
from experiments.tasks import load_suite, policy_book
from experiments.worker import Worker
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.scripted import ScriptedModel
from sandboxes.local import LocalSandboxProvider
from stores.base import Event, StoreUnavailable
from stores.memory import MemoryStore


async def test_a_worker_takes_unowned_own_and_stale_sessions_but_not_live_ones_of_other_slots(tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    [(suite, instance, task)] = load_suite("smoke", only=["arithmetic"])
    ids = {}
    for name, woke_by, age_s in [("unowned", None, 0), ("mine", "w0", 0), ("stale", "w9", 120), ("theirs", "w1", 0)]:
        sid = await store.create_session(task.meta(suite, instance))
        events = [Event("user.message", {"text": task.prompt}, ts=time.time() - age_s)]
        if woke_by:
            events.append(Event("harness.woke", {"worker": woke_by}, ts=time.time() - age_s))
        await store.append(sid, events, expect=1)
        ids[name] = sid
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), hands, FullContext(), worker="w0")
    worker = Worker(store, harness, "w0", stale_s=60)
    with pytest.raises(asyncio.TimeoutError):  # it keeps waiting: w1's live session is not its to take
        await asyncio.wait_for(worker.run(exit_when_idle=True), timeout=2)
    assert {s.id for s in await store.sessions(status="active")} == {ids["theirs"]}
    assert {s.id for s in await store.sessions(status="completed")} == {ids["unowned"], ids["mine"], ids["stale"]}
    await hands.close()


class Flaky:
    """A store that is unreachable for its first `outages` reads and appends (a restart), then fine."""

    def __init__(self, inner, outages: int):
        self.inner, self.outages = inner, outages

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _maybe_down(self):
        if self.outages > 0:
            self.outages -= 1
            raise StoreUnavailable("the store is restarting")

    async def sessions(self, **kwargs):
        self._maybe_down()
        return await self.inner.sessions(**kwargs)

    async def append(self, *args, **kwargs):
        self._maybe_down()
        return await self.inner.append(*args, **kwargs)


async def test_a_worker_waits_out_an_unavailable_store_and_its_sessions_carry_on(tmp_path):
    inner, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    for suite, instance, task in load_suite("smoke", only=["greeting", "arithmetic"]):
        sid = await inner.create_session(task.meta(suite, instance))
        await inner.append(sid, [Event("user.message", {"text": task.prompt})], expect=1)
    store = Flaky(inner, outages=3)
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), hands, FullContext(), worker="w0")
    worker = Worker(store, harness, "w0", poll_s=0.01)
    await asyncio.wait_for(worker.run(exit_when_idle=True), timeout=30)
    assert [s.status for s in await inner.sessions()] == ["completed", "completed"]
    assert not [e for s in await inner.sessions() for e in await inner.events(s.id) if e.type == "session.failed"]
    await hands.close()


async def test_acknowledged_events_missing_from_a_store_are_named(tmp_path):
    acked, other = AckedStore(MemoryStore(), tmp_path / "acks.jsonl"), MemoryStore()
    session = await acked.create_session({"task": "t"}, session_id="s1")
    await acked.append(session, [Event("user.message", {"text": "hi"}), Event("user.message", {"text": "again"})], expect=1)
    assert await lost_events(acked, tmp_path / "acks.jsonl") == (2, [])
    await other.create_session({"task": "t"}, session_id="s1")
    await other.append("s1", [Event("user.message", {"text": "hi"}), Event("user.message", {"text": "changed"})], expect=1)
    checked, lost = await lost_events(other, tmp_path / "acks.jsonl")
    assert checked == 2 and [(e.position, e.detail) for e in lost] == [(2, "acknowledged, but the store holds a different event there")]
