"""A harness's view of one session log: read once at wake, then kept in step by its own appends."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from stores.base import Event, SessionStore


class SessionLog:
    """Every append passes `expect`, so a successful append proves the local copy equals the log;
    if another brain wrote in between, the store raises Conflict and this copy is abandoned."""

    def __init__(self, store: SessionStore, session_id: str, events: list[Event]):
        self.store, self.session_id, self.events = store, session_id, events
        self.observers: list[Callable[[list[Event]], Awaitable[None]]] = []  # told of each durable append
        self._appending = asyncio.Lock()  # tool calls on several hands run at once: their appends take turns

    @classmethod
    async def open(cls, store: SessionStore, session_id: str) -> SessionLog:
        return cls(store, session_id, await store.events(session_id))

    @property
    def meta(self) -> dict:
        return self.events[0].data if self.events else {}

    async def append(self, *events: Event) -> None:
        async with self._appending:
            start = len(self.events)
            await self.store.append(self.session_id, events, expect=start)
            appended = [event.at(start + i) for i, event in enumerate(events)]
            self.events.extend(appended)
            for observer in self.observers:
                await observer(appended)
