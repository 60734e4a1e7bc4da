"""Session logs archived in results.duckdb files, read through the SessionStore interface.

Every run copies its session logs into the `events` table of its results.duckdb; this store reads them
back from one or many such files (a sweep's folder), so replay and `harnesslab sessions` treat an
archive like any live store. It is read-only.

Files are told apart by their first bytes and opened read-only; one that is empty, damaged or not ours is
an UnreadableFile naming it and what is wrong. A new results file is written under a temporary name and
renamed once complete, so a writer killed halfway leaves no partial results.duckdb to be read as one.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from stores.base import (
    Event, SessionInfo, SessionNotFound, SessionStore, StoreError, decode_event, slice_bounds, status_after,
)


EVENTS_TABLE = {
    "run_id": "VARCHAR", "session_id": "VARCHAR", "position": "INTEGER", "type": "VARCHAR",
    "data": "JSON", "ts": "DOUBLE", "v": "INTEGER",
}
SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of a DuckDB file
# DuckDB would fetch an extension from the network to read a file of another kind (an SQLite one, say)
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

Tables = Mapping[str, tuple[Mapping[str, str], Iterable[Mapping[str, Any]]]]  # name -> (columns, rows)


class ReadOnlyStore(StoreError, PermissionError):
    """Writing to an archive, or to a store opened read-only."""


class UnreadableFile(StoreError, ValueError):
    """A file that is empty, damaged, or neither a harnesslab store nor a results file."""


def file_kind(path: Path) -> str:
    """'sqlite' or 'duckdb', told from the file's first bytes (not from its name)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO in a file's place must not block the reader
    except OSError as exc:
        raise UnreadableFile(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile(f"{path} is not a regular file")
        head = os.read(fd, 16)
    finally:
        os.close(fd)
    if not head:
        raise UnreadableFile(f"{path} is empty (0 bytes): not a harnesslab store or results file")
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head[8:12] == DUCKDB_MAGIC:
        return "duckdb"
    raise UnreadableFile(f"{path} is neither an SQLite nor a DuckDB file: damaged, or not a harnesslab file")


def require_kind(path: Path, kind: str) -> None:
    found = file_kind(path)
    if found != kind:
        raise UnreadableFile(f"{path} is {_database(found)} file; expected {_database(kind)} one")


def damaged(path: Path, exc: BaseException) -> UnreadableFile:
    return UnreadableFile(f"{path} is damaged: {first_line(exc)}")


def first_line(exc: BaseException) -> str:
    """An error's message on one line (DuckDB's run over several)."""
    return next(iter(str(exc).strip().splitlines()), type(exc).__name__)


def not_ours(path: Path, kind: str, tables: Mapping[str, Any]) -> UnreadableFile:
    return UnreadableFile(f"{path} is {_database(kind)} database but not a harnesslab store or results file ({held(tables)})")


def held(tables: Mapping[str, Any]) -> str:
    return f"its tables: {', '.join(sorted(tables))}" if tables else "it holds no table"


def _database(kind: str) -> str:
    return "an SQLite" if kind == "sqlite" else "a DuckDB"


def duckdb_error(path: Path, exc: BaseException) -> StoreError:
    """A DuckDB error reading `path`, in words: held by a writer, or damaged."""
    if "conflicting lock" in str(exc).lower():
        return StoreError(f"{path} is open for writing in another process, and DuckDB lets no other process read it "
                          "meanwhile: read it once that process ends")
    return damaged(path, exc)


def connect_read_only(path: Path) -> Any:
    """A read-only DuckDB connection to the DuckDB file at `path`."""
    import duckdb

    require_kind(path, "duckdb")
    try:
        return duckdb.connect(str(path), read_only=True, config=OFFLINE)
    except duckdb.Error as exc:
        raise duckdb_error(path, exc) from None


def attach_read_only(con: Any, paths: Iterable[str | Path]) -> list[str]:
    """Attach each DuckDB file to `con`, read-only, as r0, r1, ...; returns those names."""
    import duckdb

    names = []
    for i, path in enumerate(paths):
        require_kind(Path(path), "duckdb")
        quoted = str(path).replace("'", "''")
        try:
            con.execute(f"ATTACH '{quoted}' AS r{i} (READ_ONLY)")
        except duckdb.Error as exc:
            raise duckdb_error(Path(path), exc) from None
        names.append(f"r{i}")
    return names


def tables_of(con: Any, path: Path, catalog: str | None = None) -> dict[str, set[str]]:
    """Table -> its columns, in the main schema of `catalog` (default: the connection's own database) of `con`,
    which reads `path`."""
    import duckdb

    where = "table_catalog = ?" if catalog else "table_catalog = current_database()"
    try:
        rows = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           f"WHERE {where} AND table_schema = 'main'", [catalog] if catalog else []).fetchall()
    except duckdb.Error as exc:
        raise duckdb_error(path, exc) from None
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def is_results(tables: Mapping[str, set[str]]) -> bool:
    """Whether a file of these tables holds archived session logs (an `events` table with the run of each)."""
    return set(EVENTS_TABLE) <= tables.get("events", set())


def is_results_file(path: Path) -> bool:
    con = connect_read_only(path)
    try:
        return is_results(tables_of(con, path))
    finally:
        con.close()


def event_rows(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {"session_id": session_id, "position": e.position, "type": e.type,
         "data": json.dumps(e.data, ensure_ascii=False), "ts": e.ts, "v": e.v}
        for e in events
    ]


def write_table(path: Path, table: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """Create `table` in the results file at `path` if missing, then insert `rows` (matched by name)."""
    write_tables(path, {table: (columns, rows)})


def write_tables(path: Path, tables: Tables) -> None:
    """Create each of `tables` in the results file at `path` if missing and insert its rows, in one transaction.

    A new file is written beside `path` under a temporary name, renamed to `path` once complete. An existing file
    must be a results file: nothing is written into any other."""
    path = Path(path)
    if path.exists():
        if not is_results_file(path):
            raise UnreadableFile(f"{path} is not a results file (it has no `events` table of archived sessions): "
                                 "nothing was written into it; choose another file")
        _insert(path, tables)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")  # not named results.duckdb: no reader ever takes it for one
    _remove(partial)  # left by a writer killed before its rename
    try:
        _insert(partial, tables)
        os.replace(partial, path)
    finally:
        _remove(partial)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


def _insert(path: Path, tables: Tables) -> None:
    import duckdb
    import pandas as pd

    with duckdb.connect(str(path), config=OFFLINE) as con:
        con.execute("BEGIN TRANSACTION")  # closed uncommitted if anything fails: rolled back
        for table, (columns, rows) in tables.items():
            definitions = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())  # quoted: "at" is reserved
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({definitions})")
            frame = pd.DataFrame(list(rows), columns=list(columns))
            if len(frame):
                con.register("incoming", frame)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
                con.unregister("incoming")
        con.execute("COMMIT")


def _remove(partial: Path) -> None:
    for leftover in (partial, partial.with_name(partial.name + ".wal")):
        leftover.unlink(missing_ok=True)


async def export_sessions(store: Any, path: Path, run_id: str, session_ids: Iterable[str] | None = None) -> int:
    """Copy sessions (default: all) from any store into the `events` table at `path`; returns how many."""
    ids = list(session_ids) if session_ids is not None else [info.id for info in await store.sessions()]
    rows = []
    for session_id in ids:
        rows += [{**row, "run_id": run_id} for row in event_rows(session_id, await store.events(session_id))]
    write_table(Path(path), "events", EVENTS_TABLE, rows)
    return len(ids)


class ArchiveStore(SessionStore):
    """Read-only: sessions archived in results.duckdb files, with the config of the run that logged each."""

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
        for name, path in zip(self._files, self.paths):
            if "runs" not in tables_of(self._con, path, name):
                continue
            rows = self._query(
                f"SELECT CAST(r.config AS VARCHAR) FROM {name}.runs r JOIN {name}.events e USING (run_id) "
                "WHERE e.session_id = ? LIMIT 1", [session_id])
            if rows:
                return json.loads(rows[0][0])
        return None

    def _infos(self, where: str, params: list) -> list[SessionInfo]:
        # a log's length is past its last position, so that a gap in it shows (as missing positions) when read
        rows = self._query(
            "SELECT session_id, max(position) + 1, arg_min(ts, position), arg_max(ts, position), list(type ORDER BY position), "
            "arg_min(CAST(data AS VARCHAR), position) "
            f"FROM archived {where} GROUP BY session_id ORDER BY arg_min(ts, position), session_id",
            params,
        )
        return [
            SessionInfo(sid, json.loads(meta), length, status_after(types), created, updated)
            for sid, length, created, updated, types, meta in rows
        ]

    def _query(self, sql: str, params: list) -> list[tuple]:
        import duckdb

        if self._con is None:
            self._con = self._open()
        try:
            return self._con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise self._unreadable(exc) from None

    def _open(self) -> Any:
        """A connection with every file attached, each checked to be a results file, and their events as `archived`."""
        import duckdb

        con = duckdb.connect(config=OFFLINE)
        try:
            files = self._files = attach_read_only(con, self.paths)
            for name, path in zip(files, self.paths):
                tables = tables_of(con, path, name)
                if not is_results(tables):
                    raise not_ours(path, "duckdb", tables)
            # one row per (session, position), even if the same run was archived into two files
            union = " UNION ALL ".join(f"SELECT session_id, position, type, data, ts, v FROM {f}.events" for f in files)
            con.execute(f"CREATE TEMP VIEW archived AS SELECT DISTINCT ON (session_id, position) * FROM ({union})")
        except BaseException:
            con.close()
            raise
        return con

    def _unreadable(self, exc: BaseException) -> StoreError:
        """The file a failed query could not read: found by reading each file's events in full."""
        import duckdb

        if len(self.paths) == 1:
            return duckdb_error(self.paths[0], exc)
        for name, path in zip(self._files, self.paths):
            try:
                self._con.execute("SELECT max(length(session_id) + length(type) + length(CAST(data AS VARCHAR)) "
                                  f"+ position + ts + v) FROM {name}.events").fetchall()
            except duckdb.Error as found:
                return duckdb_error(path, found)
        return UnreadableFile(f"one of {len(self.paths)} results files cannot be read ({self.paths[0]}, ...): {first_line(exc)}")
