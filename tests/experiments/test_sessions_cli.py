"""`harnesslab sessions ls|show|export` over results files, store files and PostgreSQL."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stores.postgres import PostgresStore
from stores.sqlite import SqliteStore
from tests.experiments.test_cli import harnesslab


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run of two tasks, its session log in a store file we choose (HARNESSLAB_SQLITE_PATH)."""
    where = tmp_path_factory.mktemp("run")
    done = harnesslab("run", "tasks.only=[greeting,arithmetic]", cwd=where, env={"HARNESSLAB_SQLITE_PATH": str(where / "log.sqlite")})
    assert done.returncode == 0, done.stderr
    return where


def ids_in(listing: str) -> list[str]:
    return [line.split()[0] for line in listing.splitlines()[1:-1]]


def test_the_store_path_comes_from_the_environment(finished_run):
    assert (finished_run / "log.sqlite").is_file()
    assert not list(finished_run.glob("outputs/*/*/sessions.sqlite"))


@pytest.mark.parametrize("source", [None, "outputs", "log.sqlite", "results"])
def test_ls_lists_the_same_sessions_from_every_source(finished_run, source):
    if source == "results":
        source = str(next(finished_run.glob("outputs/*/*/results.duckdb")))
    listing = harnesslab("sessions", "ls", *([source] if source else []), cwd=finished_run)
    assert listing.returncode == 0, listing.stderr
    assert "greeting" in listing.stdout and "arithmetic" in listing.stdout
    assert listing.stdout.splitlines()[-1].startswith("2 session(s) in ")
    assert len(ids_in(listing.stdout)) == 2


def test_show_prints_a_readable_transcript_by_id_prefix(finished_run):
    listing = harnesslab("sessions", "ls", "--status", "completed", cwd=finished_run).stdout
    greeting = next(line.split()[0] for line in listing.splitlines() if "greeting" in line)
    shown = harnesslab("sessions", "show", greeting[:8], cwd=finished_run)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"session {greeting} · task greeting (smoke#0) · completed")
    assert any("user" in line and "hello.txt" in line for line in lines)
    assert any("→ write_file" in line for line in lines)
    assert any("tool.result  ok" in line and "wrote 18 bytes" in line for line in lines)
    assert "completed    end_turn" in lines[-1]


def test_show_and_ls_name_what_is_wrong(finished_run):
    missing = harnesslab("sessions", "show", "zzzz", cwd=finished_run)
    assert missing.returncode == 1 and "no session matching 'zzzz'" in missing.stderr
    nowhere = harnesslab("sessions", "ls", "nope.sqlite", cwd=finished_run)
    assert nowhere.returncode == 1 and "nope.sqlite: no such file or folder; expected a results.duckdb" in nowhere.stderr


def test_ls_and_show_without_a_source_say_which_file_they_read(finished_run):
    [results] = finished_run.glob("outputs/*/*/results.duckdb")
    where = f"{results.relative_to(finished_run)} (no source named: the newest of 1 results.duckdb under ./outputs and ./multirun)"
    listing = harnesslab("sessions", "ls", cwd=finished_run)
    assert listing.returncode == 0 and listing.stdout.splitlines()[-1] == f"2 session(s) in {where}", listing.stderr
    shown = harnesslab("sessions", "show", ids_in(listing.stdout)[0][:8], cwd=finished_run)
    assert shown.returncode == 0 and f"harnesslab: from {where}" in shown.stderr
    missing = harnesslab("sessions", "show", "zzzz", cwd=finished_run)
    assert missing.returncode == 1 and f"no session matching 'zzzz'; `harnesslab sessions ls` lists them (looked in {where})" in missing.stderr


def log_sessions(store, tasks: list[str]) -> None:
    async def go() -> None:
        try:
            await store.sessions()  # creates the store's tables, with no session in them if `tasks` is empty
            for task in tasks:
                await store.create_session({"task": task})
        finally:
            await store.close()

    asyncio.run(go())


def test_an_empty_store_file_is_said_to_be_empty_and_nothing_is_written(tmp_path):
    log_sessions(SqliteStore(tmp_path / "empty.sqlite"), [])
    listing = harnesslab("sessions", "ls", "empty.sqlite", cwd=tmp_path)
    assert listing.returncode == 0 and listing.stdout.splitlines()[-1] == "0 session(s) in SQLite store empty.sqlite"
    for command, written in (("export", "archive.duckdb"), ("traces", "traces.jsonl")):
        refused = harnesslab("sessions", command, "empty.sqlite", "--to", written, cwd=tmp_path)
        assert refused.returncode == 1 and "harnesslab: no sessions in SQLite store empty.sqlite" in refused.stderr
        assert not (tmp_path / written).exists()


@pytest.fixture
def database(postgres_dsn):
    """A database of its own on the test cluster, so that no other test's schema is in it: its DSN."""
    import psycopg

    name = f"d_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    yield urlsplit(postgres_dsn)._replace(path=f"/{name}").geturl()
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.postgres
def test_export_from_a_schema_without_sessions_names_the_schemas_that_hold_them(database, tmp_path):
    import psycopg

    log_sessions(PostgresStore(database, schema="lab1"), ["greeting", "fix_bug"])
    log_sessions(PostgresStore(database, schema="empty"), [])
    hint = "the schemas of this database holding harnesslab sessions: lab1 (2 sessions); pass --schema lab1"
    missing = harnesslab("sessions", "export", database, "--to", "archive.duckdb", cwd=tmp_path)
    assert missing.returncode == 1, missing.stdout
    assert f"PostgreSQL {database}, schema harnesslab: no such schema with harnesslab tables in it; {hint}" in missing.stderr
    with psycopg.connect(database) as con:  # reading created no schema
        assert con.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'harnesslab'").fetchone() == (0,)
    empty = harnesslab("sessions", "export", database, "--schema", "empty", "--to", "archive.duckdb", cwd=tmp_path)
    assert empty.returncode == 1 and f"no sessions in PostgreSQL {database}, schema empty; {hint}" in empty.stderr
    assert not (tmp_path / "archive.duckdb").exists()
    listing = harnesslab("sessions", "ls", database, "--schema", "empty", cwd=tmp_path)
    assert listing.returncode == 0 and listing.stdout.splitlines()[-1] == f"0 session(s) in PostgreSQL {database}, schema empty"
    assert f"harnesslab: {hint}" in listing.stderr
    exported = harnesslab("sessions", "export", database, "--schema", "lab1", "--to", "archive.duckdb", cwd=tmp_path)
    assert exported.returncode == 0 and f"exported 2 session(s) from PostgreSQL {database}, schema lab1" in exported.stdout


@pytest.mark.postgres
def test_postgres_run_then_export_and_show_from_the_archive(postgres_dsn, tmp_path):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {"HARNESSLAB_POSTGRES_DSN": postgres_dsn}
    done = harnesslab("run", "store=postgres", f"store.schema={schema}", "tasks.only=[fix_bug]", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "1/1 sessions succeeded" in done.stdout
    listing = harnesslab("sessions", "ls", postgres_dsn, "--schema", schema, cwd=tmp_path)
    [sid] = ids_in(listing.stdout)
    exported = harnesslab("sessions", "export", postgres_dsn, "--schema", schema, "--to", "archive.duckdb", cwd=tmp_path)
    assert exported.returncode == 0 and "exported 1 session(s)" in exported.stdout, exported.stderr
    from_pg = harnesslab("sessions", "show", sid, postgres_dsn, "--schema", schema, cwd=tmp_path).stdout
    from_archive = harnesslab("sessions", "show", sid, "archive.duckdb", cwd=tmp_path).stdout
    assert from_archive == from_pg and "python3 test_calc.py" in from_archive


def test_postgres_without_a_dsn_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESSLAB_POSTGRES_DSN", raising=False)
    done = harnesslab("run", "store=postgres", cwd=tmp_path)
    assert done.returncode != 0 and "store=postgres needs a DSN: set HARNESSLAB_POSTGRES_DSN" in done.stderr


def test_a_duckdb_store_file_is_a_source_too(tmp_path):
    env = {"HARNESSLAB_DUCKDB_PATH": str(tmp_path / "log.duckdb")}
    assert harnesslab("run", "store=duckdb", "tasks.only=[greeting]", cwd=tmp_path, env=env).returncode == 0
    listing = harnesslab("sessions", "ls", "log.duckdb", cwd=tmp_path)
    assert listing.returncode == 0 and "greeting" in listing.stdout and len(ids_in(listing.stdout)) == 1


@pytest.mark.postgres
def test_postgres_start_prints_a_working_dsn_and_stop_stops_it(tmp_path, postgres_dsn):
    import os
    import shutil
    import tempfile

    from stores.postgres_server import free_loopback_port

    if os.geteuid() == 0:  # a folder private to root: the server's user cannot reach it
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        refused = harnesslab("postgres", "start", "--dir", str(private / "pg"), cwd=tmp_path)
        assert refused.returncode == 1 and "cannot reach" in refused.stderr and "is not searchable" in refused.stderr
    folder, port = Path(tempfile.mkdtemp(prefix="harnesslab-pg-test-")), free_loopback_port()
    started = harnesslab("postgres", "start", "--dir", str(folder), "--port", str(port), cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        dsn = f"postgresql://harnesslab@127.0.0.1:{port}/postgres"
        assert f"export HARNESSLAB_POSTGRES_DSN={dsn}" in started.stdout
        import psycopg

        with psycopg.connect(dsn) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
    finally:
        stopped = harnesslab("postgres", "stop", "--dir", str(folder), cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (folder / "data" / "postmaster.pid").exists()
    shutil.rmtree(folder)
