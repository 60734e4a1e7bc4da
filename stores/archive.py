"""Session logs archived in results.duckdb files, read through the SessionStore interface.

Every run copies its session logs into the `events` table of its results.duckdb; this store reads them
back from one or many such files (a sweep's folder), so replay and `harnesslab sessions` treat an
archive like any live store. It is read-only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from stores.base import Event, SessionInfo, SessionNotFound, StoreError, decode_event, slice_bounds, status_after


EVENTS_TABLE = {
    "run_id": "VARCHAR", "session_id": "VARCHAR", "position": "INTEGER", "type": "VARCHAR",
    "data": "JSON", "ts": "DOUBLE", "v": "INTEGER",
}


class ReadOnlyStore(StoreError, PermissionError):
    """Writing to an archive."""


def event_rows(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {"session_id": session_id, "position": e.position, "type": e.type,
         "data": json.dumps(e.data, ensure_ascii=False), "ts": e.ts, "v": e.v}
        for e in events
    ]


def write_table(path: Path, table: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """Create `table` in the DuckDB file at `path` if missing, then insert `rows` (matched by name)."""
    import duckdb
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        definitions = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())  # quoted: "at" is reserved
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({definitions})")
        if rows:
            con.register("incoming", pd.DataFrame(rows, columns=list(columns)))
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
            con.unregister("incoming")


def attach_read_only(con: Any, paths: Iterable[str | Path]) -> list[str]:
    """Attach each DuckDB file to `con`, read-only, as r0, r1, ...; returns those names."""
    names = []
    for i, path in enumerate(paths):
        quoted = str(path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS r{i} (READ_ONLY)")
        names.append(f"r{i}")
    return names


async def export_sessions(store: Any, path: Path, run_id: str, session_ids: Iterable[str] | None = None) -> int:
    """Copy sessions (default: all) from any store into the `events` table at `path`; returns how many."""
    ids = list(session_ids) if session_ids is not None else [info.id for info in await store.sessions()]
    rows = []
    for session_id in ids:
        rows += [{**row, "run_id": run_id} for row in event_rows(session_id, await store.events(session_id))]
    write_table(Path(path), "events", EVENTS_TABLE, rows)
    return len(ids)


class ArchiveStore:
    def __init__(self, paths: str | Path | Iterable[str | Path]):
        self.paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if not self.paths or missing:
            raise StoreError(f"no results file at {', '.join(missing) or '(none given)'}")
        self._con: Any = None
        self._files: list[str] = []  # the attached files' names in _con

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        raise ReadOnlyStore("a results archive is read-only; create sessions in a live store")

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        raise ReadOnlyStore(f"session {session_id}: a results archive is read-only")

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        lo, hi = slice_bounds((await self.session(session_id)).length, start, stop)
        rows = self._query(
            "SELECT position, type, CAST(data AS VARCHAR), ts, v FROM archived "
            "WHERE session_id = ? AND position >= ? AND position < ? ORDER BY position",
            [session_id, lo, hi],
        )
        return [decode_event(session_id, *row) for row in rows]

    async def session(self, session_id: str) -> SessionInfo:
        found = self._infos("WHERE session_id = ?", [session_id])
        if not found:
            raise SessionNotFound(session_id)
        return found[0]

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        found = [info for info in self._infos("", []) if status is None or info.status == status]
        return found[:limit] if limit is not None else found

    async def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def run_config(self, session_id: str) -> dict[str, Any] | None:
        """The config of the run that logged `session_id`, if its file has a `runs` table (an export has none)."""
        self._query("SELECT 1", [])
        for name in self._files:
            tables = {row[0] for row in self._con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [name]).fetchall()}
            if "runs" not in tables:
                continue
            row = self._con.execute(
                f"SELECT CAST(r.config AS VARCHAR) FROM {name}.runs r JOIN {name}.events e USING (run_id) "
                "WHERE e.session_id = ? LIMIT 1", [session_id]).fetchone()
            if row is not None:
                return json.loads(row[0])
        return None

    def _infos(self, where: str, params: list) -> list[SessionInfo]:
        rows = self._query(
            "SELECT session_id, count(*), arg_min(ts, position), arg_max(ts, position), list(type ORDER BY position), "
            "arg_min(CAST(data AS VARCHAR), position) "
            f"FROM archived {where} GROUP BY session_id ORDER BY arg_min(ts, position), session_id",
            params,
        )
        return [
            SessionInfo(sid, json.loads(meta), length, status_after(types), created, updated)
            for sid, length, created, updated, types, meta in rows
        ]

    def _query(self, sql: str, params: list) -> list[tuple]:
        if self._con is None:
            import duckdb

            con = duckdb.connect()
            files = self._files = attach_read_only(con, self.paths)
            # one row per (session, position), even if the same run was archived into two files
            union = " UNION ALL ".join(f"SELECT session_id, position, type, data, ts, v FROM {f}.events" for f in files)
            con.execute(f"CREATE TEMP VIEW archived AS SELECT DISTINCT ON (session_id, position) * FROM ({union})")
            self._con = con
        return self._con.execute(sql, params).fetchall()
