"""SQLite store: WAL journal, synchronous=FULL, so an append returns only once it is on disk.

Several processes may share one file: each transaction takes the write lock (BEGIN IMMEDIATE).
"""
from __future__ import annotations

import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from stores.archive import UnreadableFile, damaged
from stores.base import StoreError, WorkerStore
from stores.embedded import EmbeddedSqlStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, meta TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS heads (
    key INTEGER PRIMARY KEY, length INTEGER NOT NULL, status TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    session_key INTEGER NOT NULL, position INTEGER NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL, ts REAL NOT NULL, v INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_position ON events (session_key, position);
"""
# Events in arrival order plus a unique index, rather than a table clustered by session: a group commit
# across 64 sessions then dirties a few data pages instead of one per session. With the hot head row
# apart from the session's meta, and integer keys, a batch of 64 events costs 0.5 ms of CPU instead of
# 0.9 (2 kB of meta per session; measured with the script described in experiments/bench/stores.py).


class SqliteStore(EmbeddedSqlStore):
    BEGIN = "BEGIN IMMEDIATE"
    KIND = "sqlite"
    shared_between_processes = True  # each transaction takes the file's write lock

    def __init__(
        self,
        path: str | Path,
        group_commit: bool = True,
        max_batch: int = 1024,
        busy_timeout_ms: int = 10_000,
        wal_autocheckpoint: int = 4000,
        read_only: bool = False,
    ):
        super().__init__(path, group_commit, max_batch, read_only)
        self.busy_timeout_ms, self.wal_autocheckpoint = busy_timeout_ms, wal_autocheckpoint

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], folder: Path) -> AsyncIterator[WorkerStore]:
        """One file in the run's folder."""
        yield WorkerStore({**options, "path": str(folder / "sessions.sqlite")})

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        # pages of WAL before a commit also checkpoints it into the database (SQLite's default: 1000)
        con.execute(f"PRAGMA wal_autocheckpoint={int(self.wal_autocheckpoint)}")
        con.executescript(_SCHEMA)
        return con

    def _connect_read_only(self) -> sqlite3.Connection:
        # mode=ro: no write, no journal mode change; only a WAL database gets the -wal and -shm all its readers share
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        return con

    def _tables(self, con: sqlite3.Connection) -> dict[str, set[str]]:
        tables: dict[str, set[str]] = {}
        for table, column in con.execute(
            "SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c WHERE m.type = 'table'"
        ):
            tables.setdefault(table, set()).add(column)
        return tables

    def _unreadable(self, exc: Exception) -> StoreError | None:
        if isinstance(exc, sqlite3.OperationalError):  # locked, cannot be opened, I/O: the file itself may be sound
            return UnreadableFile(f"{self.path} cannot be read: {exc}")
        if isinstance(exc, sqlite3.DatabaseError):  # corrupt, or not a database
            return damaged(self.path, exc)
        return super()._unreadable(exc)

    def _heads(self, con: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[int, int, str]]:
        found = {}
        for i in range(0, len(ids), 500):  # well under SQLite's limit on parameters per statement
            chunk = ids[i : i + 500]
            query = (
                "SELECT s.id, s.key, h.length, h.status FROM sessions s JOIN heads h ON h.key = s.key "
                f"WHERE s.id IN ({', '.join('?' * len(chunk))})"
            )
            found.update((sid, (key, length, status)) for sid, key, length, status in con.execute(query, chunk))
        return found

    def _insert_events(self, con: sqlite3.Connection, rows: list[tuple]) -> None:
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _update_heads(self, con: sqlite3.Connection, changed: list[tuple]) -> None:
        con.executemany("UPDATE heads SET length = ?2, status = ?3, updated = ?4 WHERE key = ?1", changed)
