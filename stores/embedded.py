"""What the embedded SQL stores (sqlite, duckdb) share: one writer thread, group commit, the same reads.

A dialect supplies `_connect` (open the file, create the schema), its `BEGIN` statement, and the three
bulk statements of a group commit, each in the form its engine runs fastest.

Opened `read_only` (what `harnesslab sessions` does), a store changes nothing in its file, not even the journal
mode, creates no store where there was none, and reads only a file of its kind holding its tables; a file it
cannot read is an UnreadableFile naming it and what is wrong (empty, damaged, not ours).
"""
from __future__ import annotations

import asyncio
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from stores.archive import ReadOnlyStore, damaged, not_ours, require_kind
from stores.base import (
    CorruptEvent, Event, SessionInfo, SessionNotFound, SessionStore, StoreError, check_session_id, decode_event,
    slice_bounds,
)
from stores.batch import BatchWriter, Write, plan_batch

T = TypeVar("T")

# every column of the tables a store file holds (see the dialects' schemas)
STORE_COLUMNS = {
    "sessions": {"key", "id", "meta", "created"},
    "heads": {"key", "length", "status", "updated"},
    "events": {"session_key", "position", "type", "data", "ts", "v"},
}


class EmbeddedSqlStore(BatchWriter, SessionStore):
    BEGIN = "BEGIN"
    KIND = ""  # what stores.archive.file_kind calls this dialect's files

    def __init__(self, path: str | Path, group_commit: bool = True, max_batch: int = 1024, read_only: bool = False):
        super().__init__(self._commit_async, group_commit, max_batch)
        self.path = Path(path)
        self.read_only = read_only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=type(self).__name__)
        self._con: Any = None

    # -- the SessionStore protocol (create_session and append: BatchWriter) -------------------------

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        check_session_id(session_id)
        return await self._read(self._read_events, session_id, start, stop)

    async def session(self, session_id: str) -> SessionInfo:
        check_session_id(session_id)
        return await self._read(self._read_session, session_id)

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return await self._read(self._read_sessions, status, limit)

    async def close(self) -> None:
        await self._drain()
        if self._con is not None:
            await self._run(self._con.close)
            self._con = None
        self._executor.shutdown(wait=True)

    # -- writes -----------------------------------------------------------------------------------

    async def _commit_async(self, writes: Sequence[Write]) -> list[Any]:
        if self.read_only:
            raise ReadOnlyStore(f"{self.path} was opened read-only")
        return await self._run(self._commit, writes)

    def _commit(self, writes: Sequence[Write]) -> list[Any]:
        """One transaction for every write; a write that fails its checks fails alone."""
        con = self._connection()
        con.execute(self.BEGIN)
        try:
            heads = self._heads(con, sorted({w.session_id for w in writes}))
            plan = plan_batch(writes, {sid: (length, status) for sid, (_, length, status) in heads.items()})
            keys = {sid: key for sid, (key, _, _) in heads.items()}
            states = plan.sessions.items()
            created = [(sid, state) for sid, state in states if state.meta is not None]
            if created:  # keys are handed out under the write lock this transaction holds
                first = con.execute("SELECT coalesce(max(key), 0) + 1 FROM sessions").fetchone()[0]
                keys.update((sid, first + i) for i, (sid, _) in enumerate(created))
                con.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?)", [(keys[sid], sid, st.meta, st.created) for sid, st in created])
                con.executemany("INSERT INTO heads VALUES (?, ?, ?, ?)", [(keys[sid], st.length, st.status, st.updated) for sid, st in created])
            if plan.rows:
                self._insert_events(con, [(keys[sid], *rest) for sid, *rest in plan.rows])
            changed = [(keys[sid], st.length, st.status, st.updated) for sid, st in states if st.meta is None]
            if changed:
                self._update_heads(con, changed)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return plan.outcomes

    # -- what a dialect supplies --------------------------------------------------------------------
    # Tables: sessions (key, id, meta, created) never change after creation; heads (key, length, status,
    # updated) is the small row every append rewrites; events (session_key, position, type, data, ts, v).

    @abstractmethod
    def _connect(self) -> Any:
        """Open `self.path`, configure durability, create the schema if missing."""

    @abstractmethod
    def _connect_read_only(self) -> Any:
        """Open `self.path` read-only, changing nothing in it."""

    @abstractmethod
    def _tables(self, con: Any) -> dict[str, set[str]]:
        """Table -> its columns, of every table in the file."""

    def _unreadable(self, exc: Exception) -> StoreError | None:
        """What `exc`, raised reading the file, says is wrong with it; None if it is not about the file.
        A dialect adds its engine's errors."""
        return damaged(self.path, exc) if isinstance(exc, CorruptEvent) else None

    @abstractmethod
    def _heads(self, con: Any, ids: list[str]) -> dict[str, tuple[int, int, str]]:
        """id -> (key, length, status) for those of `ids` that exist, read inside the write transaction."""

    @abstractmethod
    def _insert_events(self, con: Any, rows: list[tuple]) -> None:
        """Insert (session_key, position, type, data, ts, v) rows."""

    @abstractmethod
    def _update_heads(self, con: Any, changed: list[tuple]) -> None:
        """Set (key, length, status, updated) of existing sessions."""

    # -- reads (on the writer thread: one connection, never shared across threads) ----------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._run(fn, *args)
        except Exception as exc:
            unreadable = self._unreadable(exc) if self.read_only else None
            if unreadable is None:
                raise
            raise unreadable from None

    def _connection(self) -> Any:
        if self._con is None and self.read_only:
            self._con = self._open_read_only()
        elif self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = self._connect()
        return self._con

    def _open_read_only(self) -> Any:
        require_kind(self.path, self.KIND)
        con = self._connect_read_only()
        try:
            tables = self._tables(con)
            if any(not columns <= tables.get(table, set()) for table, columns in STORE_COLUMNS.items()):
                raise not_ours(self.path, self.KIND, tables)
        except BaseException:
            con.close()
            raise
        return con

    def _read_events(self, session_id: str, start: int, stop: int | None) -> list[Event]:
        key, info = self._head(session_id)
        lo, hi = slice_bounds(info.length, start, stop)
        rows = self._connection().execute(
            "SELECT position, type, data, ts, v FROM events "
            "WHERE session_key = ? AND position >= ? AND position < ? ORDER BY position",
            (key, lo, hi),
        ).fetchall()
        return [decode_event(session_id, *row) for row in rows]

    def _read_session(self, session_id: str) -> SessionInfo:
        return self._head(session_id)[1]

    def _head(self, session_id: str) -> tuple[int, SessionInfo]:
        row = self._connection().execute(f"{_SESSIONS} WHERE s.id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return row[0], _info(row)

    def _read_sessions(self, status: str | None, limit: int | None) -> list[SessionInfo]:
        sql, params = _SESSIONS, []
        if status is not None:
            sql, params = sql + " WHERE h.status = ?", [status]
        sql += " ORDER BY s.created, s.id"
        if limit is not None:
            sql, params = sql + " LIMIT ?", params + [int(limit)]
        return [_info(row) for row in self._connection().execute(sql, params).fetchall()]


def _info(row: tuple) -> SessionInfo:
    """A _SESSIONS row as a SessionInfo; a damaged one is a CorruptEvent (its meta is its session.created's data)."""
    try:
        info = SessionInfo.from_row(row[1:])
    except (TypeError, ValueError) as exc:
        raise CorruptEvent(str(row[1]), 0, f"its meta is not JSON ({exc})") from None
    if not isinstance(info.meta, dict):
        raise CorruptEvent(info.id, 0, "its meta is not a JSON object")
    return info


_SESSIONS = (
    "SELECT s.key, s.id, s.meta, h.length, h.status, s.created, h.updated "
    "FROM sessions s JOIN heads h ON h.key = s.key"
)

