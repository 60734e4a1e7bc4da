"""Where `harnesslab sessions` reads from: a results file or folder, a store file, or a PostgreSQL DSN."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stores.archive import ArchiveStore
from stores.base import StoreError

SOURCES_HELP = (
    "a results.duckdb, a folder of them (a sweep), a store file (.sqlite, .duckdb) or a postgresql:// DSN; "
    "default: the newest results.duckdb under ./outputs and ./multirun"
)


class SourceError(StoreError, ValueError):
    pass


def open_source(spec: str | None, schema: str = "harnesslab") -> Any:
    """A SessionStore reading the sessions that `spec` names (see SOURCES_HELP)."""
    if spec is None:
        return ArchiveStore(newest_results(Path.cwd()))
    if spec.startswith(("postgresql://", "postgres://")):
        from stores.postgres import PostgresStore

        return PostgresStore(spec, schema=schema)
    path = Path(spec)
    if path.is_dir():
        found = sorted(path.rglob("results.duckdb"))
        if not found:
            raise SourceError(f"no results.duckdb under {path}")
        return ArchiveStore(found)
    if not path.is_file():
        raise SourceError(f"{spec}: no such file or folder; expected {SOURCES_HELP}")
    if path.suffix in (".sqlite", ".sqlite3", ".db"):
        from stores.sqlite import SqliteStore

        return SqliteStore(path)
    if path.suffix == ".duckdb":
        if _is_results_file(path):
            return ArchiveStore(path)
        from stores.duckdb import DuckdbStore

        return DuckdbStore(path)
    raise SourceError(f"{spec}: cannot tell what this is from its name; expected {SOURCES_HELP}")


def newest_results(root: Path) -> Path:
    found = [p for folder in ("outputs", "multirun") for p in (root / folder).rglob("results.duckdb")]
    if not found:
        raise SourceError(f"no results.duckdb under {root / 'outputs'} or {root / 'multirun'}; pass {SOURCES_HELP}")
    return max(found, key=lambda p: p.stat().st_mtime)


def _is_results_file(path: Path) -> bool:
    """An archive's `events` table carries the run each session came from; a DuckDB store's does not."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
        ).fetchall()
    return ("run_id",) in columns
