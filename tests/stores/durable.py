"""Open a durable store from a plain (kind, target) pair, so a child process can open the same one."""
from __future__ import annotations

from stores.duckdb import DuckdbStore
from stores.postgres import PostgresStore
from stores.sqlite import SqliteStore


def open_store(kind: str, target: str):
    if kind == "sqlite":
        return SqliteStore(target)
    if kind == "duckdb":
        return DuckdbStore(target)
    dsn, schema = target.rsplit("#", 1)
    return PostgresStore(dsn, schema=schema)
