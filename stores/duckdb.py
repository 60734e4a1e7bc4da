"""DuckDB store: every session log in one DuckDB file, durable at commit; group commit by default.

DuckDB runs single-row transactions at about 1k/s; it is built for batches, which is what group commit
gives it. A DuckDB file has one writing process at a time: a second one gets a clear StoreError.
"""
from __future__ import annotations

from typing import Any

from stores.base import StoreError
from stores.embedded import EmbeddedSqlStore

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sessions (
        id VARCHAR PRIMARY KEY, meta VARCHAR NOT NULL, length BIGINT NOT NULL,
        status VARCHAR NOT NULL, created DOUBLE NOT NULL, updated DOUBLE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events (
        session_id VARCHAR NOT NULL, position BIGINT NOT NULL, type VARCHAR NOT NULL,
        data VARCHAR NOT NULL, ts DOUBLE NOT NULL, v INTEGER NOT NULL,
        PRIMARY KEY (session_id, position))""",
]


class DuckdbStore(EmbeddedSqlStore):
    BEGIN = "BEGIN TRANSACTION"

    def _connect(self) -> Any:
        import duckdb

        try:
            con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            raise StoreError(
                f"{self.path} is open in another process ({exc}). DuckDB allows one writing process per "
                "file: use store=sqlite or store=postgres to share sessions between processes"
            ) from None
        for statement in _SCHEMA:
            con.execute(statement)
        return con
