"""SQLite store: WAL journal, synchronous=FULL, so an append returns only once it is on disk.

Several processes may share one file: each transaction takes the write lock (BEGIN IMMEDIATE).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from stores.embedded import EmbeddedSqlStore

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


class SqliteStore(EmbeddedSqlStore):
    BEGIN = "BEGIN IMMEDIATE"

    def __init__(self, path: str | Path, group_commit: bool = True, max_batch: int = 1024, busy_timeout_ms: int = 10_000):
        super().__init__(path, group_commit, max_batch)
        self.busy_timeout_ms = busy_timeout_ms

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.executescript(_SCHEMA)
        return con
