"""A harness's view of one session log: read once at wake, then kept in step by its own appends."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from stores.base import Event, SessionStore
from stores.events import SessionCreated

T = TypeVar("T")


class SessionLog:
    """Every append passes `expect`, so a successful append proves the local copy equals the log;
    if another brain wrote in between, the store raises Conflict and this copy is abandoned.

    `write` lets the harness go on while an append commits (a model request need not wait for the tool
    result before it to be durable: a model call changes nothing). Appends commit in the order written. Once
    one fails, the local copy goes back to what is durable and every later append fails with the same error:
    whatever was decided after it was decided on events the log does not hold. `durable_copy` goes on from there.
    """

    def __init__(self, store: SessionStore, session_id: str, events: list[Event]):
        self.store, self.session_id, self.events = store, session_id, events
        self.observers: list[Callable[[list[Event]], Awaitable[None]]] = []  # told of each durable append
        self.durable = len(events)  # how much of the local copy the store holds
        self.failure: BaseException | None = None  # what the first failed append failed with
        self._last: asyncio.Future | None = None  # the last append written, committing or done

    @classmethod
    async def open(cls, store: SessionStore, session_id: str) -> SessionLog:
        return cls(store, session_id, await store.events(session_id))

    @property
    def meta(self) -> dict:
        return SessionCreated.read(self.events[0]).meta if self.events else {}

    async def append(self, *events: Event) -> None:
        """Append and wait until the events (and every append written before them) are durable."""
        await self.write(*events)

    def write(self, *events: Event) -> asyncio.Future:
        """Append without waiting: the events join the local copy now; the future resolves once they are durable."""
        # after the last position, not the count: a log the store returned with a gap can still be ended
        start = self.events[-1].position + 1 if self.events else 0
        appended = [event.at(start + i) for i, event in enumerate(events)]
        self.events.extend(appended)
        self._last = asyncio.ensure_future(self._commit(self._last, start, appended, len(self.events)))
        return self._last

    async def meanwhile(self, work: Coroutine[Any, Any, T]) -> T:
        """The result of `work`, run while the appends written so far commit; if one of them fails first,
        `work` is cancelled and that failure raised."""
        if self.failure is not None:
            work.close()
            raise self.failure
        writing = self._last
        if writing is None or writing.done():
            return await work
        running = asyncio.ensure_future(work)

        def stop_if_failed(_: asyncio.Future) -> None:
            if self.failure is not None:
                running.cancel()

        writing.add_done_callback(stop_if_failed)
        try:
            return await running
        except asyncio.CancelledError:
            if self.failure is not None and not asyncio.current_task().cancelling():  # cancelled by the failure
                raise self.failure from None
            raise
        finally:
            writing.remove_done_callback(stop_if_failed)

    async def settled(self) -> None:
        """Wait for every append written to commit or fail (a failure is raised where it is awaited, not here)."""
        if self._last is not None:
            await asyncio.gather(self._last, return_exceptions=True)

    async def durable_copy(self) -> SessionLog:
        """Once every append written has settled: a log of what is durable, with no observers, that can be
        appended to even if this one failed (to end the session, say)."""
        await self.settled()
        return SessionLog(self.store, self.session_id, self.events[: self.durable])

    async def _commit(self, before: asyncio.Future | None, start: int, appended: list[Event], held: int) -> None:
        """Append `appended` at position `start`; once durable, the first `held` events of the local copy are."""
        if before is not None:
            if not before.done():
                await asyncio.wait({before})
            if not before.cancelled():
                before.exception()  # retrieved: its failure, if any, is this append's too (self.failure)
        try:
            if self.failure is not None:
                raise self.failure
            await self.store.append(self.session_id, appended, expect=start)
            self.durable = held
            for observer in self.observers:
                await observer(appended)
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc
            del self.events[self.durable:]
            raise
