"""A self-hosted environment's work queue (`environments.work`): a session whose brain calls a tool puts work on
its environment's queue; the SDK's EnvironmentWorker polls it, acknowledges it, heartbeats its lease, and stops it.

The queue is the environment's log and nothing else: each change of an item is one event (stores/events.py: Work*),
appended with `expect`, so two workers polling at once (on one server or on several sharing a store) never claim
one item twice, and a server started again sees the same queue. An item's state is the fold of its events and the
clock: a lease that no heartbeat extended within its TTL is lost, and the item is queued again for the next poll to
reclaim; an item polled but not acknowledged within the poll's `reclaim_older_than_ms` is handed out again.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from managed import errors, ids
from managed.errors import ApiError, conflict, invalid
from managed.records import Records, listing, page
from stores.base import Conflict, Event
from stores.events import WorkAcked, WorkHeartbeat, WorkPolled, WorkQueued, WorkStopped, WorkUpdated

WORK = "work"  # the prefix of a work item's id
NO_HEARTBEAT = "NO_HEARTBEAT"  # what a worker's first heartbeat expects
RECLAIM_MS = 5000  # the API's default reclaim_older_than_ms
LIVE = ("queued", "starting", "active")  # an item in one of these serves (or will serve) its session
POLL_S = 0.1  # how often a long poll looks again (appends of other processes, leases running out)


@dataclass
class Work:
    """One work item, as its events and the clock say."""

    id: str
    session_id: str
    created_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    polled_at: float | None = None
    acked_at: float | None = None
    started_at: float | None = None  # the first heartbeat
    heartbeat: str | None = None  # the last heartbeat, as the next one must echo it
    heartbeat_at: float | None = None
    ttl_s: int = 0
    stop_requested_at: float | None = None
    stopped_at: float | None = None

    def lease_lost(self, now: float) -> bool:
        return self.acked_at is not None and (self.heartbeat_at or self.acked_at) + self.ttl_s < now

    def state(self, now: float) -> str:
        if self.stopped_at is not None or (self.stop_requested_at is not None and self.lease_lost(now)):
            return "stopped"
        if self.stop_requested_at is not None:
            return "stopping"
        if self.acked_at is None or self.lease_lost(now):
            return "queued"
        return "active" if self.heartbeat is not None else "starting"

    def claimable(self, now: float, reclaim_s: float) -> str | None:
        """Why a poll may hand the item out now ("" if no worker had it), or None if it may not."""
        if self.state(now) != "queued":
            return None
        if self.acked_at is not None:
            return "its lease expired"
        if self.polled_at is None:
            return ""
        return "it was not acknowledged in time" if now - self.polled_at >= reclaim_s else None


def fold(events: list[Event]) -> dict[str, Work]:
    """Every work item of an environment's log, oldest first."""
    items: dict[str, Work] = {}
    for event in events:
        apply(items, event)
    return items


def apply(items: dict[str, Work], event: Event) -> None:
    if event.type == WorkQueued.TYPE:
        queued = WorkQueued.read(event)
        items[queued.work_id] = Work(queued.work_id, queued.session_id, event.ts)
        return
    work_id = event.data.get("work_id") if event.type.startswith("managed.work_") else None
    work = items.get(work_id)
    if work is None:
        return
    if event.type == WorkPolled.TYPE:  # a new claim: what the last worker did is no more
        work.polled_at, work.acked_at, work.started_at, work.heartbeat, work.heartbeat_at = event.ts, None, None, None, None
    elif event.type == WorkAcked.TYPE:
        work.acked_at, work.ttl_s = event.ts, WorkAcked.read(event).ttl_seconds or 0
    elif event.type == WorkHeartbeat.TYPE:
        beat = WorkHeartbeat.read(event)
        work.heartbeat, work.heartbeat_at, work.ttl_s = beat.last_heartbeat, event.ts, beat.ttl_seconds or 0
        work.started_at = work.started_at or event.ts
    elif event.type == WorkStopped.TYPE:
        if WorkStopped.read(event).force or work.acked_at is None:
            work.stopped_at = event.ts
        else:
            work.stop_requested_at = work.stop_requested_at or event.ts
    elif event.type == WorkUpdated.TYPE:
        work.metadata = errors.patched(work.metadata, WorkUpdated.read(event).metadata)


def work_object(environment_id: str, work: Work, now: float, secret: bool = False) -> dict[str, Any]:
    """The item as the API returns it (`secret` is only ever given by a poll; harnesslab's is null: the worker's
    calls use the environment key)."""
    def time_of(ts: float | None) -> str | None:
        return ids.timestamp(ts) if ts is not None else None

    return {"type": "work", "id": work.id, "environment_id": environment_id, "data": {"type": "session", "id": work.session_id},
            "metadata": work.metadata, "state": work.state(now), "created_at": ids.timestamp(work.created_at),
            "acknowledged_at": time_of(work.acked_at), "started_at": time_of(work.started_at),
            "latest_heartbeat_at": time_of(work.heartbeat_at), "stop_requested_at": time_of(work.stop_requested_at),
            "stopped_at": time_of(work.stopped_at), **({"secret": None} if secret else {})}


class WorkQueue:
    """The work queues of the store's self-hosted environments; a lease lasts `lease_ttl_s` unless a heartbeat
    asks for another TTL."""

    def __init__(self, records: Records, lease_ttl_s: int):
        if not isinstance(lease_ttl_s, int) or lease_ttl_s < 1:
            raise ValueError(f"serve.lease_ttl_s={lease_ttl_s!r}: expected a whole number of seconds >= 1")
        self.records, self.lease_ttl_s = records, lease_ttl_s

    async def ensure(self, environment_id: str, session_id: str) -> None:
        """Queue work for the session unless a live item already serves it."""
        def decide(items: dict[str, Work], now: float):
            if any(w.session_id == session_id and w.state(now) in LIVE for w in items.values()):
                return None, None
            return WorkQueued(ids.new_id(WORK), session_id).event(), lambda after: None
        await self._change(environment_id, decide)

    async def poll(self, environment_id: str, query: Mapping[str, str], worker_id: str | None) -> dict[str, Any] | None:
        """The oldest item a worker may take, claimed for `worker_id`; waits up to `block_ms` for one."""
        block_s = _whole(query, "block_ms", 1, 999, 0) / 1000
        reclaim_s = _whole(query, "reclaim_older_than_ms", 0, 2**31, RECLAIM_MS) / 1000
        deadline = time.monotonic() + block_s
        while True:
            claimed = await self._change(environment_id, lambda items, now: self._claim(items, now, reclaim_s, worker_id))
            if claimed is not None or time.monotonic() >= deadline:
                return claimed
            grown = self.records.store.grown(environment_id)
            try:
                await asyncio.wait_for(grown.wait(), min(POLL_S, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                pass

    def _claim(self, items: dict[str, Work], now: float, reclaim_s: float, worker_id: str | None):
        for work in items.values():
            why = work.claimable(now, reclaim_s)
            if why is not None:
                return WorkPolled(work.id, worker_id, why or None).event(), lambda after, claimed=work.id: after[claimed]
        return None, None

    async def ack(self, environment_id: str, work_id: str) -> dict[str, Any]:
        def decide(items: dict[str, Work], now: float):
            work = _item(items, work_id)
            if work.state(now) != "queued" or work.polled_at is None:
                raise conflict(f"work {work_id} is {work.state(now)}{'' if work.polled_at else ', not polled'}: only an item a "
                               "poll handed out can be acknowledged, once")
            return WorkAcked(work_id, self.lease_ttl_s).event(), lambda after: after[work_id]
        return await self._change(environment_id, decide)

    async def heartbeat(self, environment_id: str, work_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        expected = query.get("expected_last_heartbeat")
        ttl = _whole(query, "desired_ttl_seconds", 1, 86400, self.lease_ttl_s)

        def decide(items: dict[str, Work], now: float):
            work = _item(items, work_id)
            state = work.state(now)
            if state in ("stopping", "stopped"):  # not compared: the worker is to stop
                return None, _heartbeat(work.heartbeat, False, state, work.ttl_s)
            stored = work.heartbeat or NO_HEARTBEAT
            if state == "queued" or (expected is not None and expected != stored):
                raise _lease_lost(work, state, expected)
            beat = ids.timestamp(now)
            return WorkHeartbeat(work_id, beat, ttl).event(), lambda _: _heartbeat(beat, True, "active", ttl)
        return await self._change(environment_id, decide)

    async def stop(self, environment_id: str, work_id: str, body: Any) -> dict[str, Any]:
        body = errors.body_object(body)
        errors.known_fields(body, {"force"})
        force = errors.flag(body, "force", False)

        def decide(items: dict[str, Work], now: float):
            if _item(items, work_id).state(now) == "stopped":
                raise conflict(f"work {work_id} is already stopped")
            return WorkStopped(work_id, force).event(), lambda after: after[work_id]
        return await self._change(environment_id, decide)

    async def update(self, environment_id: str, work_id: str, body: Any) -> dict[str, Any]:
        body = errors.body_object(body)
        errors.known_fields(body, {"metadata"})
        if "metadata" not in body:
            raise invalid("metadata: required (a patch: a key set to null is deleted)")
        patch = errors.metadata(body["metadata"], patch=True)

        def decide(items: dict[str, Work], now: float):
            errors.patched(_item(items, work_id).metadata, patch)  # a 400 now if the result is too big
            return WorkUpdated(work_id, patch).event(), lambda after: after[work_id]
        return await self._change(environment_id, decide)

    async def retrieve(self, environment_id: str, work_id: str) -> dict[str, Any]:
        items = fold(await self._queue(environment_id))
        return work_object(environment_id, _item(items, work_id), time.time())

    async def list(self, environment_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        now = time.time()
        newest_first = [work_object(environment_id, w, now) for w in reversed(fold(await self._queue(environment_id)).values())]
        chosen, next_page = page(newest_first, lambda work: work["id"], query.get("page"), errors.limit(query))
        return listing(chosen, next_page)

    async def stats(self, environment_id: str) -> dict[str, Any]:
        now = time.time()
        waiting = [w for w in fold(await self._queue(environment_id)).values() if w.state(now) == "queued"]
        pending = [w for w in waiting if w.acked_at is None and w.polled_at is not None]
        return {"type": "work_queue_stats", "depth": len(waiting) - len(pending), "pending": len(pending),
                "oldest_queued_at": ids.timestamp(min(w.created_at for w in waiting)) if waiting else None,
                "workers_polling": None}  # not tracked: an empty poll writes nothing to the store

    async def _queue(self, environment_id: str) -> list[Event]:
        """The environment's log; a 404 for an unknown one, a 400 for a cloud one (it has no queue)."""
        log = await self.records.log("environment", environment_id)
        if log[0].data["environment"]["config"]["type"] != "self_hosted":
            raise invalid(f"environment {environment_id} is a cloud environment: harnesslab's sandboxes run its "
                          "tools, and it has no work queue (create one with config {\"type\": \"self_hosted\"})")
        return log

    async def _change(self, environment_id: str, decide: Callable[[dict[str, Work], float], tuple[Event | None, Any]]) -> Any:
        """Read the queue, `decide` on a change (an event, and what to answer once it is logged), append it; if
        another writer appended first, read again and decide again. With no change, the answer is given as it is;
        else it is a function of the items after the change, and a Work it gives is answered as the API's object."""
        while True:
            log = await self._queue(environment_id)
            items, now = fold(log), time.time()
            event, answer = decide(items, now)
            if event is None:
                return answer
            try:
                await self.records.store.append(environment_id, [event], expect=len(log))
            except Conflict:
                continue
            apply(items, event)
            result = answer(items)
            return work_object(environment_id, result, now, secret=event.type == WorkPolled.TYPE) if isinstance(result, Work) else result


def _item(items: dict[str, Work], work_id: str) -> Work:
    if work_id not in items:
        raise errors.not_found("work", work_id)
    return items[work_id]


def _heartbeat(last: str | None, extended: bool, state: str, ttl: int) -> dict[str, Any]:
    return {"type": "work_heartbeat", "last_heartbeat": last or "", "lease_extended": extended, "state": state, "ttl_seconds": ttl}


def _lease_lost(work: Work, state: str, expected: str | None) -> ApiError:
    """412, as the API answers a heartbeat whose lease another worker may hold (the SDK's worker stops serving)."""
    why = "its lease expired or was never claimed" if state == "queued" else f"the last heartbeat is {work.heartbeat or NO_HEARTBEAT!r}"
    return ApiError(412, "invalid_request_error", f"heartbeat of work {work.id}: expected_last_heartbeat {expected!r} does "
                    f"not hold ({why}): another worker may hold the lease", {
                        "error_code": "heartbeat_precondition_failed", "current_state": {
                            "last_heartbeat": work.heartbeat, "lease_extended": False, "state": state, "ttl_seconds": work.ttl_s}})


def _whole(query: Mapping[str, str], name: str, least: int, most: int, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not least <= int(raw) <= most:
        raise invalid(f"{name}: expected a whole number from {least} to {most}, got {raw[:20]!r}")
    return int(raw)
