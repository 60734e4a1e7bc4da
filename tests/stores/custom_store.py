"""A user's own store, living outside harnesslab's packages: a SessionStore of its own (it keeps its log in a SQLite
file of its own name, through SqliteStore, but inherits none of its declarations) that declares what the runners
ask. tests/stores/conftest.py runs the contract suite on it; with it, a run under faults= or run.workers= needs no
change to harnesslab:

    harnesslab run store=sqlite store._target_=tests.stores.custom_store.LedgerStore faults=harness_kill
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from stores.base import Event, SessionInfo, SessionStore, WorkerStore
from stores.sqlite import SqliteStore

LEDGER = "ledger.sqlite"  # the file for_workers places in a run's folder


class LedgerStore(SessionStore):
    shared_between_processes = True  # one SQLite file: every transaction takes its write lock

    def __init__(self, path: str | Path, **sqlite_options: Any):
        self._log = SqliteStore(path, **sqlite_options)

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], folder: Path) -> AsyncIterator[WorkerStore]:
        yield WorkerStore({**options, "path": str(folder / LEDGER)})

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        return await self._log.create_session(meta, session_id)

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        return await self._log.append(session_id, events, expect=expect)

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        return await self._log.events(session_id, start, stop)

    async def session(self, session_id: str) -> SessionInfo:
        return await self._log.session(session_id)

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return await self._log.sessions(status=status, limit=limit)

    async def close(self) -> None:
        await self._log.close()
