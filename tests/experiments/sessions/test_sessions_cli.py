"""`harnesslab sessions ls|show|export` over results files, store files and PostgreSQL."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stores.base import Event
from stores.postgres import PostgresStore
from stores.sqlite import SqliteStore
from tests.experiments.cli.test_cli import harnesslab


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


def gapped_store(path: Path) -> str:
    """A store whose one session lost the event at position 2 (deleted behind the store's back): its id."""
    import sqlite3

    async def go() -> str:
        store = SqliteStore(path)
        try:
            sid = await store.create_session({"task": "greeting", "suite": "smoke", "instance": 0})
            await store.append(sid, [Event("user.message", {"text": "hi"}), Event("harness.woke", {"harness": "h"}),
                                     Event("session.completed", {"reason": "end_turn"})], expect=1)
            return sid
        finally:
            await store.close()

    sid = asyncio.run(go())
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM events WHERE position = 2")
    con.close()
    return sid


def test_show_says_where_a_log_has_a_gap_and_fork_refuses_it(tmp_path):
    sid = gapped_store(tmp_path / "log.sqlite")
    shown = harnesslab("sessions", "show", sid[:8], "log.sqlite", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert " · 4 events · " in lines[0] and lines[0].endswith(" · GAP: positions 2 missing from the log")
    assert [line.split()[0] for line in lines[1:]] == ["#0", "#1", "#2", "#3"]
    assert lines[3].split(None, 2)[1:] == ["MISSING", "positions 2: the log has no event there"]
    exported = harnesslab("sessions", "export", "log.sqlite", "--to", "archive.duckdb", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    from_archive = harnesslab("sessions", "show", sid[:8], "archive.duckdb", cwd=tmp_path)
    assert from_archive.stdout == shown.stdout  # the archive keeps the gap where it is
    for argv in (["fork", sid[:8], "--from", "log.sqlite", "--at", "2"], ["replay", sid[:8], "--from", "archive.duckdb"]):
        refused = harnesslab(*argv, cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert f"session {sid}: its log has a gap (no event at positions 2..2 of 4)" in refused.stderr


CONTROLS = {  # what a sandbox's output may hold to act on the terminal that shows it, and how it is shown instead
    "\x1b]52;c;aGFja2Vk\x07": "\\x1b]52;c;aGFja2Vk\\x07",  # OSC 52: write the clipboard
    "\x1b[2J\x1b[H": "\\x1b[2J\\x1b[H",  # clear the screen, cursor home
    "\x1b]0;owned\x1b\\": "\\x1b]0;owned\\x1b\\",  # set the window title
    "\x9b31m": "\\x9b31m",  # CSI as one C1 character
    "ok\rFAKE": "ok\\x0dFAKE", "ab\x08\x08": "ab\\x08\\x08", "\x07": "\\x07", "\x7f": "\\x7f", "\x00": "\\x00",
}


def test_show_and_ls_print_control_sequences_visibly(tmp_path):
    async def go() -> str:
        store = SqliteStore(tmp_path / "log.sqlite")
        try:
            sid = await store.create_session({"task": "\x1b[31mred\x1b[0m", "suite": "smoke", "instance": 0})
            await store.append(sid, [Event("tool.result", {"output": " ".join(CONTROLS), "duration_ms": 1.0})], expect=1)
            return sid
        finally:
            await store.close()

    sid = asyncio.run(go())
    shown = harnesslab("sessions", "show", sid, "log.sqlite", "--width", "1000", cwd=tmp_path)
    listing = harnesslab("sessions", "ls", "log.sqlite", cwd=tmp_path)
    for done in (shown, listing):
        assert done.returncode == 0, done.stderr
        assert controls_in(done.stdout) == []
        assert "\\x1b[31mred\\x1b[0m" in done.stdout
    assert " ".join(CONTROLS.values()) in shown.stdout
    traced = harnesslab("sessions", "traces", "log.sqlite", "--to", "/dev/stdout", cwd=tmp_path)
    assert traced.returncode == 0 and "invoke_agent" in traced.stdout and controls_in(traced.stdout) == []


def controls_in(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]


def test_printable_escapes_every_control_but_newline_and_tab():
    from experiments.sessions.transcript import printable

    for raw, shown in CONTROLS.items():
        assert printable(raw) == shown
    assert printable("line\n\ttabbed é ✓") == "line\n\ttabbed é ✓"
    assert controls_in(printable("".join(map(chr, range(0x00, 0xa0))))) == []


def test_a_divergence_quoting_tool_output_prints_its_controls_visibly():
    from experiments.replay.fork import ToolDivergence

    raw = " ".join(CONTROLS)
    shown = str(ToolDivergence(7, "bash", {"command": raw}, expected=raw, got="\x1b[2Jclean"))
    assert controls_in(shown) == [] and "\\x9b31m" in shown and "\\x1b[2Jclean" in shown


def test_show_prints_thinking_redacted_thinking_and_compaction_blocks(tmp_path):
    content = [{"type": "compaction", "content": "the summary so far"}, {"type": "thinking", "thinking": "check calc.py first", "signature": "s"},
               {"type": "redacted_thinking", "data": "opaque"}, {"type": "thinking", "thinking": "", "signature": "s"},
               {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "calc.py"}}]

    async def go() -> str:
        store = SqliteStore(tmp_path / "log.sqlite")
        try:
            sid = await store.create_session({"task": "fix calc", "suite": "smoke", "instance": 0})
            await store.append(sid, [Event("model.response", {"content": content, "stop_reason": "tool_use", "usage": {}})], expect=1)
            return sid
        finally:
            await store.close()

    shown = harnesslab("sessions", "show", asyncio.run(go()), "log.sqlite", "--width", "1000", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for said in ("(compaction: the summary so far)", "(thinking: check calc.py first)", "(redacted thinking)",
                 "(thinking: [omitted])", '→ read_file {"path": "calc.py"}'):
        assert said in shown.stdout
