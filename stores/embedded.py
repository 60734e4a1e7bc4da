"""What the embedded SQL stores (sqlite, duckdb) share: one writer thread, group commit, the same SQL.

A backend supplies `_connect` (open the file, create the schema) and its `BEGIN` statement.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from stores.base import Event, SessionInfo, SessionNotFound, decode_event, encode_data, encode_row, slice_bounds
from stores.batch import Write, plan_batch
from stores.group_commit import GroupCommit

T = TypeVar("T")
ROWS_PER_STATEMENT = 500  # keeps a statement's parameter count well under SQLite's limit


class EmbeddedSqlStore(ABC):
    BEGIN = "BEGIN"

    def __init__(self, path: str | Path, group_commit: bool = True, max_batch: int = 1024):
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=type(self).__name__)
        self._con: Any = None
        self._group = GroupCommit(self._commit_async, max_batch) if group_commit else None

    # -- the SessionStore protocol ----------------------------------------------------------------

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        session_id = session_id or uuid.uuid4().hex
        created = Event("session.created", dict(meta))
        await self._write(Write(session_id, [encode_row(session_id, created)], 0, encode_data(session_id, created)))
        return session_id

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        return await self._write(Write(session_id, [encode_row(session_id, e) for e in events], expect))

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        return await self._run(self._read_events, session_id, start, stop)

    async def session(self, session_id: str) -> SessionInfo:
        return await self._run(self._read_session, session_id)

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return await self._run(self._read_sessions, status, limit)

    async def close(self) -> None:
        if self._con is not None:
            await self._run(self._con.close)
            self._con = None
        self._executor.shutdown(wait=True)

    # -- writes -----------------------------------------------------------------------------------

    async def _write(self, write: Write) -> int:
        if self._group is not None:
            return await self._group.submit(write)
        [outcome] = await self._commit_async([write])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _commit_async(self, writes: Sequence[Write]) -> list[Any]:
        return await self._run(self._commit, writes)

    def _commit(self, writes: Sequence[Write]) -> list[Any]:
        """One transaction for every write; a write that fails its checks fails alone."""
        con = self._connection()
        con.execute(self.BEGIN)
        try:
            plan = plan_batch(writes, self._stored(con, {w.session_id for w in writes}))
            for i in range(0, len(plan.rows), ROWS_PER_STATEMENT):
                chunk = plan.rows[i : i + ROWS_PER_STATEMENT]
                values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
                con.execute(f"INSERT INTO events VALUES {values}", [v for row in chunk for v in row])
            now = time.time()
            for sid, state in plan.sessions.items():
                if state.meta is not None:
                    con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", (sid, state.meta, state.length, state.status, now, now))
                else:
                    con.execute("UPDATE sessions SET length = ?, status = ?, updated = ? WHERE id = ?", (state.length, state.status, now, sid))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return plan.outcomes

    def _stored(self, con: Any, ids: set[str]) -> dict[str, tuple[int, str]]:
        """(length, status) of those of `ids` that exist, read inside the write transaction."""
        found: dict[str, tuple[int, str]] = {}
        ordered = sorted(ids)
        for i in range(0, len(ordered), ROWS_PER_STATEMENT):
            chunk = ordered[i : i + ROWS_PER_STATEMENT]
            marks = ", ".join("?" * len(chunk))
            for sid, length, status in con.execute(f"SELECT id, length, status FROM sessions WHERE id IN ({marks})", chunk).fetchall():
                found[sid] = (length, status)
        return found

    # -- reads (on the writer thread: one connection, never shared across threads) ----------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connection(self) -> Any:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = self._connect()
        return self._con

    @abstractmethod
    def _connect(self) -> Any:
        """Open `self.path`, configure durability, create the schema if missing."""

    def _read_events(self, session_id: str, start: int, stop: int | None) -> list[Event]:
        lo, hi = slice_bounds(self._read_session(session_id).length, start, stop)
        rows = self._connection().execute(
            "SELECT position, type, data, ts, v FROM events "
            "WHERE session_id = ? AND position >= ? AND position < ? ORDER BY position",
            (session_id, lo, hi),
        ).fetchall()
        return [decode_event(session_id, *row) for row in rows]

    def _read_session(self, session_id: str) -> SessionInfo:
        row = self._connection().execute(
            "SELECT id, meta, length, status, created, updated FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return _info(row)

    def _read_sessions(self, status: str | None, limit: int | None) -> list[SessionInfo]:
        sql, params = "SELECT id, meta, length, status, created, updated FROM sessions", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status]
        sql += " ORDER BY created, id"
        if limit is not None:
            sql, params = sql + " LIMIT ?", params + [int(limit)]
        return [_info(row) for row in self._connection().execute(sql, params).fetchall()]


def _info(row: tuple) -> SessionInfo:
    session_id, meta, length, status, created, updated = row
    return SessionInfo(session_id, json.loads(meta), length, status, created, updated)
