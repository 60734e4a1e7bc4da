"""Which sessions a worker takes: unowned ones, its slot's, and stale ones; others' live ones it leaves."""
from __future__ import annotations

import asyncio
import time

import pytest

from experiments.faults.acks import AckedStore, lost_events
from experiments.tasks import load_suite, policy_book
from experiments.workers.worker import Worker
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


def damage(path, sid: str, sql: str) -> None:
    """Change session `sid`'s rows in the SQLite file at `path` behind the store's back (`sql` uses ?1 for its key)."""
    import sqlite3

    with sqlite3.connect(path) as db:
        [(key,)] = db.execute("SELECT key FROM sessions WHERE id = ?", (sid,)).fetchall()
        db.execute(sql, (key,))


def skips_logged(caplog, sid: str) -> int:
    return sum(1 for r in caplog.records if r.name == "experiments.workers.worker" and r.levelname == "ERROR" and sid in r.getMessage())


async def test_a_worker_ends_or_skips_each_bad_session_once_and_finishes_the_good_ones(tmp_path, caplog):
    from stores.sqlite import SqliteStore

    path, hands = tmp_path / "lab.sqlite", LocalSandboxProvider(root=str(tmp_path / "hands"))
    store = SqliteStore(path)
    [(suite, instance, task)] = load_suite("smoke", only=["arithmetic"])
    user = Event("user.message", {"text": task.prompt})
    ids = {}
    for name, events in [("good", [user]), ("bad_content", [user, Event("model.response", {"content": "hi"})]),
                         ("no_user", []), ("corrupt", [user]), ("tail_gap", [user, Event("harness.woke", {})])]:
        ids[name] = await store.create_session(task.meta(suite, instance))
        if events:
            await store.append(ids[name], events, expect=1)
    await store.close()
    damage(path, ids["corrupt"], "UPDATE events SET data = '{\"text\": ' WHERE session_key = ?1 AND position = 1")
    damage(path, ids["tail_gap"], "DELETE FROM events WHERE session_key = ?1 AND position = 2")  # the head still says 3
    store = SqliteStore(path)
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), hands, FullContext(), worker="w0")
    worker = Worker(store, harness, "w0", poll_s=0.01, stale_s=0)  # stale at once: the session with no user message too
    await asyncio.wait_for(worker.run(exit_when_idle=True), timeout=60)  # it exits: nothing left it can end
    status = {name: (await store.session(sid)).status for name, sid in ids.items()}
    assert status == {"good": "completed", "bad_content": "failed", "no_user": "failed", "corrupt": "active", "tail_gap": "active"}
    assert "position 2: model.response content" in (await store.events(ids["bad_content"]))[-1].data["reason"]
    assert worker.woken == 5 and worker.skipped == {ids["corrupt"], ids["tail_gap"]}  # each woken once
    assert [skips_logged(caplog, ids[name]) for name in ("corrupt", "tail_gap")] == [1, 1]
    await store.close()
    await hands.close()


async def test_a_fresh_session_with_no_user_message_waits_for_it_and_an_unreadable_one_is_skipped_once(tmp_path, caplog):
    from stores.sqlite import SqliteStore

    path, hands = tmp_path / "lab.sqlite", LocalSandboxProvider(root=str(tmp_path / "hands"))
    store = SqliteStore(path)
    [(suite, instance, task)] = load_suite("smoke", only=["arithmetic"])
    fresh, corrupt, good = [await store.create_session(task.meta(suite, instance)) for _ in range(3)]
    for sid in (corrupt, good):
        await store.append(sid, [Event("user.message", {"text": task.prompt})], expect=1)
    await store.close()
    damage(path, corrupt, "UPDATE events SET data = 'null' WHERE session_key = ?1 AND position = 1")
    store = SqliteStore(path)
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), hands, FullContext(), worker="w0")
    worker = Worker(store, harness, "w0", poll_s=0.01)
    running = asyncio.ensure_future(worker.run(exit_when_idle=True))
    while (await store.session(good)).status == "active":  # every poll looked at the older two first
        assert not running.done()
        await asyncio.sleep(0.01)
    assert [e.type for e in await store.events(fresh)] == ["session.created"]  # left to the run about to append
    await store.append(fresh, [Event("user.message", {"text": task.prompt})], expect=1)
    await asyncio.wait_for(running, timeout=60)
    assert (await store.session(fresh)).status == "completed" and worker.skipped == {corrupt}
    assert skips_logged(caplog, corrupt) == 1 and (await store.session(corrupt)).status == "active"
    await store.close()
    await hands.close()


async def test_a_store_that_cannot_list_its_sessions_stops_the_worker_with_the_reason(tmp_path):
    import sqlite3

    from experiments.workers.worker import CannotGoOn
    from stores.sqlite import SqliteStore

    path = tmp_path / "sessions.sqlite"
    store = SqliteStore(path)
    await store.create_session({"task": "damaged"})
    con = sqlite3.connect(path)
    con.execute("UPDATE sessions SET meta = '{not json'")
    con.commit()
    con.close()
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), LocalSandboxProvider(root=str(tmp_path)), FullContext())
    with pytest.raises(CannotGoOn, match="cannot list its active sessions: .*meta is not JSON"):
        await asyncio.wait_for(Worker(store, harness, "w0").run(), timeout=30)
    await store.close()


async def test_sessions_a_worker_skips_do_not_hide_the_ones_behind_them(tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    [(suite, instance, task)] = load_suite("smoke", only=["arithmetic"])
    ids = []
    for _ in range(5):
        ids.append(await store.create_session(task.meta(suite, instance)))
        await store.append(ids[-1], [Event("user.message", {"text": task.prompt})], expect=1)
    worker = Worker(store, DecoupledHarness(store, ScriptedModel(policy_book()), hands, FullContext()), "w0")
    worker.window, worker.skipped = 3, set(ids[:3])  # the three oldest: no wake can end them
    await asyncio.wait_for(worker.run(), timeout=60)
    assert {s.id for s in await store.sessions(status="completed")} == set(ids[3:])
    await hands.close()
