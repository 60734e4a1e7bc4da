"""Which sessions a worker takes: unowned ones, its slot's, and stale ones; others' live ones it leaves."""
from __future__ import annotations

import asyncio
import time

import pytest

from experiments.tasks import load_suite, policy_book
from experiments.worker import Worker
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.scripted import ScriptedModel
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
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
