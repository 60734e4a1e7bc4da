"""A session store: keeps its log in SQLite (through SqliteStore, whose options it takes) and counts the events
appended. It subclasses the contract, SessionStore, not SqliteStore, so it declares for itself what the runners ask:
it can be shared between processes, and how worker processes reach it.

    PYTHONPATH=. harnesslab run store._target_=examples.my_store.CountingStore
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from stores.base import Event, SessionInfo, SessionStore, WorkerStore
from stores.sqlite import SqliteStore


class CountingStore(SessionStore):
    shared_between_processes = True  # one SQLite file, which several processes may write

    def __init__(self, path: str | Path, **sqlite_options: Any):
        self._log = SqliteStore(path, **sqlite_options)
        self.appended = 0

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], folder: Path) -> AsyncIterator[WorkerStore]:
        yield WorkerStore({**options, "path": str(folder / "counted.sqlite")})

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        return await self._log.create_session(meta, session_id)

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        length = await self._log.append(session_id, events, expect=expect)
        self.appended += len(events)
        return length

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        return await self._log.events(session_id, start, stop)

    async def session(self, session_id: str) -> SessionInfo:
        return await self._log.session(session_id)

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return await self._log.sessions(status=status, limit=limit)

    async def close(self) -> None:
        await self._log.close()
        print(f"counting store: {self.appended} event(s) appended")
