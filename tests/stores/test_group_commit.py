"""Group commit: concurrent requests share one commit; each caller hears only after its commit."""
from __future__ import annotations

import asyncio

import pytest

from stores.base import Conflict, Event
from stores.batch import BatchWriter
from stores.group_commit import GroupCommit


class Recorder:
    """A commit function that records its batches and can be held open or made to fail."""

    def __init__(self):
        self.batches: list[list] = []
        self.release = asyncio.Event()
        self.release.set()
        self.committed: list = []

    async def commit(self, requests):
        self.batches.append(list(requests))
        await self.release.wait()
        if "boom" in requests:
            raise OSError("disk full")
        self.committed += requests
        return [ValueError(f"bad {r}") if str(r).startswith("bad") else f"ok {r}" for r in requests]


async def test_requests_arriving_during_a_commit_share_the_next_one():
    recorder = Recorder()
    group = GroupCommit(recorder.commit)
    recorder.release.clear()
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)  # the first batch, [0], is now committing and held open
    rest = [asyncio.create_task(group.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in [first, *rest])  # nobody is told before their commit finishes
    recorder.release.set()
    assert await asyncio.gather(first, *rest) == [f"ok {i}" for i in range(6)]
    assert recorder.batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_failing_request_fails_alone_and_a_failing_batch_fails_all():
    recorder = Recorder()
    group = GroupCommit(recorder.commit)
    outcomes = await asyncio.gather(group.submit("a"), group.submit("bad b"), group.submit("c"), return_exceptions=True)
    assert outcomes[0] == "ok a" and outcomes[2] == "ok c" and isinstance(outcomes[1], ValueError)
    failed = await asyncio.gather(group.submit("x"), group.submit("boom"), return_exceptions=True)
    assert all(isinstance(o, OSError) and "disk full" in str(o) for o in failed)
    assert await group.submit("after") == "ok after"  # the group keeps working


async def test_max_batch_splits_batches_and_a_cancelled_caller_does_not_stop_the_commit():
    recorder = Recorder()
    group = GroupCommit(recorder.commit, max_batch=2)
    recorder.release.clear()
    tasks = [asyncio.create_task(group.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    recorder.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert recorder.batches == [[0, 1], [2, 3], [4]] and 1 in recorder.committed
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(recorder.commit, max_batch=0)


async def test_concurrent_appends_to_a_store_are_committed_together(store_factory):
    store = store_factory()
    try:
        ids = [await store.create_session({}) for _ in range(32)]
        batches: list[int] = []
        grouped = isinstance(store, BatchWriter) and store._group is not None  # the memory store needs no group commit
        if grouped:
            inner = store._group._commit

            async def spy(writes):
                batches.append(len(writes))
                return await inner(writes)

            store._group._commit = spy
        results = await asyncio.gather(
            *(store.append(sid, [Event("user.message", {"n": i})], expect=1) for i, sid in enumerate(ids)),
            store.append(ids[0], [Event("user.message", {})], expect=1),  # loses the race: Conflict alone
            return_exceptions=True,
        )
        assert results[:32] == [2] * 32 and isinstance(results[32], Conflict)
        if grouped:
            assert 1 <= len(batches) < 32 and sum(batches) == 33
        for i, sid in enumerate(ids):
            assert [e.data for e in await store.events(sid, 1)] == [{"n": i}]
    finally:
        await store.close()


async def test_closing_a_store_lets_submitted_writes_commit_first(store_factory):
    store = store_factory()
    sid = await store.create_session({})
    pending = [asyncio.ensure_future(store.append(sid, [Event("tool.result", {"n": i})])) for i in range(20)]
    await asyncio.sleep(0)  # submitted, not yet committed
    await store.close()
    assert [await p for p in pending][-1] == 21


async def test_with_two_in_flight_a_second_batch_commits_while_the_first_is_held_and_drain_waits_for_both():
    recorder = Recorder()
    group = GroupCommit(recorder.commit, in_flight=2)
    recorder.release.clear()
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    second = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    third = [asyncio.create_task(group.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    assert recorder.batches == [[0], [1]]  # two batches open at once; the next requests wait for a free one
    drained = asyncio.create_task(group.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    recorder.release.set()
    assert await asyncio.gather(first, second, *third) == [f"ok {i}" for i in range(4)]
    await drained
    assert sorted(map(tuple, recorder.batches)) == [(0,), (1,), (2, 3)]
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(recorder.commit, in_flight=0)
