"""Where `harnesslab sessions` reads from: a results file or folder, a store file, or a PostgreSQL DSN.

A Source is the store opened on it and where that is, in words, so that a command can say where it looked
and, when it found no session there, where else sessions are (another PostgreSQL schema, say).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stores.archive import ArchiveStore, file_kind, is_results_file
from stores.base import StoreError, StoreUnavailable

SOURCES_HELP = (
    "a results.duckdb, a folder of them (a sweep), a store file (.sqlite, .duckdb) or a postgresql:// DSN; "
    "default: the newest results.duckdb under ./outputs and ./multirun"
)


class SourceError(StoreError, ValueError):
    pass


@dataclass
class Source:
    store: Any
    where: str  # what was read, in words: "SQLite store log.sqlite", "PostgreSQL postgresql://..., schema lab1"
    defaulted: bool = False  # no source was named: `where` is the default's pick
    elsewhere: list[str] = field(default_factory=list)  # where else sessions are, said when this holds none

    async def is_empty(self) -> bool:
        return not await self.store.sessions(limit=1)

    async def require_sessions(self) -> None:
        """Raise SourceError, saying where it looked and where else sessions are, if this source holds none."""
        if await self.is_empty():
            raise SourceError("; ".join([f"no sessions in {self.where}", *self.elsewhere]))


def open_source(spec: str | None, schema: str = "harnesslab") -> Any:
    """A SessionStore reading the sessions that `spec` names (see SOURCES_HELP)."""
    return read_source(spec, schema).store


def read_source(spec: str | None, schema: str = "harnesslab") -> Source:
    """The sessions that `spec` names (see SOURCES_HELP), and where they are."""
    if spec is None:
        return _newest_results_source(Path.cwd())
    if spec.startswith(("postgresql://", "postgres://")):
        return _postgres_source(spec, schema)
    path = Path(spec)
    if path.is_dir():
        found = sorted(path.rglob("results.duckdb"))
        if not found:
            raise SourceError(f"no results.duckdb under {path}")
        return Source(ArchiveStore(found), f"{len(found)} results.duckdb under {path}")
    if not path.is_file():
        raise SourceError(f"{spec}: no such file or folder; expected {SOURCES_HELP}")
    return _file_source(path)


def _file_source(path: Path) -> Source:
    """The store or results file at `path`, told apart by what it holds (not its name) and opened read-only:
    reading creates and changes nothing."""
    if file_kind(path) == "sqlite":
        from stores.sqlite import SqliteStore

        return Source(SqliteStore(path, read_only=True), f"SQLite store {path}")
    if is_results_file(path):
        return Source(ArchiveStore(path), str(path))
    from stores.duckdb import DuckdbStore

    return Source(DuckdbStore(path, read_only=True), f"DuckDB store {path}")


def newest_results(root: Path) -> Path:
    return _newest(_results_under(root))


def _newest(paths: list[Path]) -> Path:
    return max(paths, key=lambda p: p.stat().st_mtime)


def _results_under(root: Path) -> list[Path]:
    found = [p for folder in ("outputs", "multirun") for p in (root / folder).rglob("results.duckdb")]
    if not found:
        raise SourceError(f"no results.duckdb under {root / 'outputs'} or {root / 'multirun'}; pass {SOURCES_HELP}")
    return found


def _newest_results_source(root: Path) -> Source:
    found = _results_under(root)
    newest = _newest(found)
    where = (f"{newest.relative_to(root)} (no source named: the newest of {len(found)} results.duckdb under "
             "./outputs and ./multirun)")
    return Source(ArchiveStore(newest), where, defaulted=True)


def _postgres_source(dsn: str, schema: str) -> Source:
    """A store on `schema`, which must exist: a read creates nothing (a store opened on it would create it)."""
    from stores.postgres import PostgresStore, redact_dsn

    store = PostgresStore(dsn, schema=schema)  # checks the DSN and the schema's name first
    where = f"PostgreSQL {redact_dsn(dsn)}, schema {schema}"
    held = session_schemas(dsn)
    others = {name: count for name, count in held.items() if count and name != schema}
    if others:
        listed = ", ".join(f"{name} ({count} session{'s' if count > 1 else ''})" for name, count in others.items())
        elsewhere = [f"the schemas of this database holding harnesslab sessions: {listed}; pass --schema {next(iter(others))}"]
    else:
        elsewhere = ["no schema of this database holds harnesslab sessions"]
    if schema not in held:
        raise SourceError("; ".join([f"{where}: no such schema with harnesslab tables in it", *elsewhere]))
    return Source(store, where, elsewhere=elsewhere)


def session_schemas(dsn: str) -> dict[str, int]:
    """Each schema of the database at `dsn` holding a harnesslab session table: how many sessions it holds."""
    import psycopg
    from psycopg import sql

    from stores.postgres import redact_dsn

    try:
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as con:
            schemas = [row[0] for row in con.execute(
                "SELECT table_schema FROM information_schema.columns WHERE table_name = 'sessions' "
                "AND column_name IN ('id', 'meta', 'length', 'status', 'created', 'updated') "
                "GROUP BY table_schema HAVING count(*) = 6 ORDER BY table_schema").fetchall()]
            count = sql.SQL("SELECT count(*) FROM {}.sessions")
            return {name: con.execute(count.format(sql.Identifier(name))).fetchone()[0] for name in schemas}
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {exc}") from None
