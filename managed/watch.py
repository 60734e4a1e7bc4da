"""A store that tells who waits on a session when its log grows: the server's event streams wait on it instead of
polling, for appends made in this process (appends by other processes on a shared store are found by polling)."""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

from stores.base import Event, SessionInfo, SessionStore


class WatchedStore(SessionStore):
    def __init__(self, inner: SessionStore):
        self.inner = inner
        self._grown: dict[str, asyncio.Event] = {}

    @property
    def shared_between_processes(self) -> bool:  # type: ignore[override]
        return self.inner.shared_between_processes

    def grown(self, session_id: str) -> asyncio.Event:
        """Set at the next append to `session_id`: take it before reading the log, and no append is missed."""
        return self._grown.setdefault(session_id, asyncio.Event())

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        return await self.inner.create_session(meta, session_id)

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        try:
            return await self.inner.append(session_id, events, expect=expect)
        finally:
            grown = self._grown.pop(session_id, None)
            if grown is not None:
                grown.set()

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        return await self.inner.events(session_id, start, stop)

    async def session(self, session_id: str) -> SessionInfo:
        return await self.inner.session(session_id)

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return await self.inner.sessions(status=status, limit=limit)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def run_config(self, session_id: str) -> dict[str, Any] | None:
        return self.inner.run_config(session_id)
