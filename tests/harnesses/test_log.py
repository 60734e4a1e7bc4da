"""SessionLog: appends written without waiting commit in order, and a failure leaves the local copy as stored."""
from __future__ import annotations

import asyncio

import pytest

from harnesses.log import SessionLog
from stores.base import Event, StoreError, StoreUnavailable
from stores.memory import MemoryStore
from tests.harnesses.doubles import GatedStore, sleep_noting_cancel


async def open_log(store) -> SessionLog:
    return await SessionLog.open(store, await store.create_session({"system": ""}))


def types(events) -> list[str]:
    return [e.type for e in events]


async def test_written_events_join_the_local_copy_at_once_and_commit_in_order():
    store = GatedStore(held={"test.a"})
    log = await open_log(store)
    first, second = log.write(Event("test.a", {})), log.write(Event("test.b", {}))
    assert types(log.events) == ["session.created", "test.a", "test.b"] and log.durable == 1
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()  # b waits for a, which waits for the store
    store.release.set()
    await second
    assert types(await store.events(log.session_id)) == ["session.created", "test.a", "test.b"] and log.durable == 3


async def test_once_an_append_fails_every_later_one_fails_with_it_and_a_durable_copy_goes_on():
    store = GatedStore(held={"test.a"}, broken={"test.a"})
    log = await open_log(store)
    failing, built_on_it = log.write(Event("test.a", {})), log.write(Event("test.b", {}))
    store.release.set()
    with pytest.raises(StoreUnavailable):
        await built_on_it
    assert failing.exception() is built_on_it.exception() is log.failure
    assert types(log.events) == ["session.created"] and log.durable == 1  # back to what is stored
    with pytest.raises(StoreUnavailable):  # written after the failure, but on whatever the failed events led to
        await log.append(Event("test.c", {}))
    assert types(log.events) == ["session.created"]
    copy = await log.durable_copy()
    await copy.append(Event("test.d", {}))
    assert types(await store.events(log.session_id)) == ["session.created", "test.d"] == types(copy.events)


async def test_an_observer_that_fails_fails_the_appends_after_it_but_its_events_stay():
    store = MemoryStore()
    log = await open_log(store)

    async def mirror(events):
        if events[0].type == "test.a":
            raise StoreError("mirror lost")

    log.observers.append(mirror)
    first, second = log.write(Event("test.a", {})), log.write(Event("test.b", {}))
    with pytest.raises(StoreError, match="mirror lost"):
        await second
    assert first.exception() is second.exception()
    assert types(log.events) == ["session.created", "test.a"] == types(await store.events(log.session_id))
    copy = await log.durable_copy()
    assert copy.observers == [] and types(copy.events) == types(log.events)


async def test_work_runs_while_appends_commit_and_is_cancelled_when_one_fails():
    store = GatedStore(held={"test.a"}, broken={"test.a"})
    log = await open_log(store)
    log.write(Event("test.a", {}))
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work():
        started.set()
        await sleep_noting_cancel(30, cancelled)

    meanwhile = asyncio.ensure_future(log.meanwhile(work()))
    await asyncio.wait_for(started.wait(), 5)  # the work began before the append committed
    store.release.set()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(meanwhile, 5)
    assert cancelled.is_set()


async def test_work_done_before_an_append_fails_cannot_be_logged_and_later_work_is_not_started():
    store = GatedStore(held={"test.a"}, broken={"test.a"})
    log = await open_log(store)
    await log.settled()  # nothing written: returns at once
    log.write(Event("test.a", {}))
    assert await log.meanwhile(asyncio.sleep(0, "answer")) == "answer"  # done while test.a still commits
    store.release.set()
    with pytest.raises(StoreUnavailable):
        await log.append(Event("test.b", {"answer": "answer"}))  # decided on test.a, which never committed
    started = []

    async def work():
        started.append(True)

    with pytest.raises(StoreUnavailable):
        await log.meanwhile(work())
    assert started == [] and types(await store.events(log.session_id)) == ["session.created"]
