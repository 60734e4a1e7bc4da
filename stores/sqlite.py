"""SQLite store: WAL journal, synchronous=FULL, so an append returns only once it is on disk."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from stores.base import (
    Event,
    SessionInfo,
    SessionNotFound,
    check_expect,
    decode_event,
    encode_data,
    slice_bounds,
    status_after,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, meta TEXT NOT NULL, length INTEGER NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL, position INTEGER NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL, ts REAL NOT NULL, v INTEGER NOT NULL,
    PRIMARY KEY (session_id, position)
) WITHOUT ROWID;
"""


class SqliteStore:
    """One connection driven by one thread; several processes may share the file (BEGIN IMMEDIATE)."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._con: sqlite3.Connection | None = None

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        session_id = session_id or uuid.uuid4().hex
        created = Event("session.created", dict(meta))
        row = (created.type, encode_data(session_id, created), created.ts, created.v)
        await self._run(self._create, session_id, row)
        return session_id

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        rows = [(e.type, encode_data(session_id, e), e.ts, e.v) for e in events]
        return await self._run(self._append, session_id, rows, events, expect)

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        return await self._run(self._events, session_id, start, stop)

    async def session(self, session_id: str) -> SessionInfo:
        return await self._run(self._session, session_id)

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return await self._run(self._sessions, status, limit)

    async def close(self) -> None:
        if self._con is not None:
            await self._run(self._con.close)
            self._con = None
        self._executor.shutdown(wait=True)

    # -- everything below runs on the store's own thread --------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            con.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(_SCHEMA)
            self._con = con
        return self._con

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            result = work(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return result

    def _create(self, session_id: str, row: tuple) -> None:
        def work(con: sqlite3.Connection) -> None:
            now = time.time()
            try:
                con.execute(
                    "INSERT INTO sessions VALUES (?, ?, 1, 'active', ?, ?)",
                    (session_id, row[1], now, now),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"session {session_id!r} already exists") from None
            con.execute("INSERT INTO events VALUES (?, 0, ?, ?, ?, ?)", (session_id, *row))

        self._transaction(work)

    def _append(self, session_id: str, rows: list[tuple], events: Sequence[Event], expect: int | None) -> int:
        def work(con: sqlite3.Connection) -> int:
            found = con.execute("SELECT length, status FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if found is None:
                raise SessionNotFound(session_id)
            length, status = found
            check_expect(session_id, expect, length)
            con.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                [(session_id, length + i, *row) for i, row in enumerate(rows)],
            )
            new_length = length + len(rows)
            con.execute(
                "UPDATE sessions SET length = ?, status = ?, updated = ? WHERE id = ?",
                (new_length, status_after(events, status), time.time(), session_id),
            )
            return new_length

        return self._transaction(work)

    def _events(self, session_id: str, start: int, stop: int | None) -> list[Event]:
        lo, hi = slice_bounds(self._session(session_id).length, start, stop)
        rows = self._connection().execute(
            "SELECT position, type, data, ts, v FROM events "
            "WHERE session_id = ? AND position >= ? AND position < ? ORDER BY position",
            (session_id, lo, hi),
        ).fetchall()
        return [decode_event(session_id, *row) for row in rows]

    def _session(self, session_id: str) -> SessionInfo:
        row = self._connection().execute(
            "SELECT id, meta, length, status, created, updated FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return _info(row)

    def _sessions(self, status: str | None, limit: int | None) -> list[SessionInfo]:
        rows = self._connection().execute(
            "SELECT id, meta, length, status, created, updated FROM sessions "
            "WHERE ?1 IS NULL OR status = ?1 ORDER BY created, id LIMIT ?2",
            (status, -1 if limit is None else limit),
        ).fetchall()
        return [_info(row) for row in rows]


def _info(row: tuple) -> SessionInfo:
    session_id, meta, length, status, created, updated = row
    return SessionInfo(session_id, json.loads(meta), length, status, created, updated)
