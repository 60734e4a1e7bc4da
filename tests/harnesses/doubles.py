"""Test doubles shared by the harness tests: stores whose appends can be held, broken or crash the brain, a model
answering from a list, slow work, and what a log says happened."""
from __future__ import annotations

import asyncio

from harnesses.base import Model, ModelResponse
from stores.base import Event, StoreUnavailable
from stores.memory import MemoryStore


class GatedStore(MemoryStore):
    """Appends of events whose type is in `held` wait for `release`; those in `broken` fail."""

    def __init__(self, held=(), broken=()):
        super().__init__()
        self.held, self.broken, self.release = set(held), set(broken), asyncio.Event()

    async def append(self, session_id, events, *, expect=None):
        if events[0].type in self.held:
            await self.release.wait()
        if events[0].type in self.broken:
            raise StoreUnavailable(f"cannot append {events[0].type}")
        return await super().append(session_id, events, expect=expect)


async def sleep_noting_cancel(seconds: float, cancelled: asyncio.Event) -> None:
    """Sleep; if cancelled meanwhile, set `cancelled` (and stay cancelled)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        cancelled.set()
        raise


class Crash(BaseException):
    """Stands in for the process dying: nothing in the harness may catch it."""


class CrashAfterToolResult:
    """A store that lets the harness die right after its n-th tool.result became durable."""

    def __init__(self, store, n: int):
        self.store, self.n, self.seen = store, n, 0

    async def append(self, session_id, events, *, expect=None):
        length = await self.store.append(session_id, events, expect=expect)
        self.seen += sum(e.type == "tool.result" for e in events)
        if self.seen >= self.n:
            raise Crash(f"after tool.result #{self.n}")
        return length

    def __getattr__(self, name):
        return getattr(self.store, name)


class CrashOnAppend:
    """The brain dies as it appends a batch holding an event `when` picks out: that batch is never written."""

    def __init__(self, store, when, why):
        self.store, self.when, self.why = store, when, why

    async def append(self, session_id, events, *, expect=None):
        if any(self.when(e) for e in events):
            raise Crash(self.why)
        return await self.store.append(session_id, events, expect=expect)

    def __getattr__(self, name):
        return getattr(self.store, name)


class Responses(Model):
    """A model that answers each call with the next of `contents`, keeping every request it got."""

    name = "responses"

    def __init__(self, *contents: list[dict]):
        self.contents, self.requests = list(contents), []

    async def respond(self, request):
        self.requests.append(request)
        content = self.contents.pop(0)
        return ModelResponse(content, "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")


def conversation(events: list[Event]) -> list[tuple]:
    """What the log says happened, without timings, ids of hands, or wake bookkeeping."""
    kept = []
    for e in events:
        d = e.data
        if e.type == "model.response":
            kept.append((e.type, d["content"], d["stop_reason"]))
        elif e.type == "tool.call":
            kept.append((e.type, d["tool_use_id"], d["name"], d["input"]))
        elif e.type == "tool.result":
            kept.append((e.type, d["tool_use_id"], d["output"], d["is_error"]))
        elif e.type in ("user.message", "session.completed", "session.failed"):
            kept.append((e.type, d))
    return kept


async def start_session(store, task) -> str:
    sid = await store.create_session(task.meta("smoke"))
    await store.append(sid, [Event("user.message", {"text": task.prompt})], expect=1)
    return sid
