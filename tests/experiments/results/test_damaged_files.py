"""Read commands over damaged or foreign files, and what they print from logged data.

Every read command (`sessions ls/show/export/traces`, `replay`, `fork`, `report`) over a truncated, garbled,
empty or foreign file ends with one line naming the file and what is wrong, exits nonzero, and changes nothing:
the file keeps its bytes and mtime, and no file appears beside it (but the -wal/-shm an SQLite reader of a WAL
database shares). A run killed while writing results.duckdb leaves none. Control sequences in logged data are
shown, never sent to the terminal.
"""
from __future__ import annotations

import asyncio
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import duckdb
import pytest

from experiments.results.schema import SCHEMA
from experiments.results.tables import write_results
from stores.archive import UnreadableFile, export_sessions
from stores.base import Event
from stores.duckdb import DuckdbStore
from stores.sqlite import SqliteStore
from tests.experiments.cli.test_cli import harnesslab

DAMAGED = "is damaged: "
EMPTY = "is empty (0 bytes): not a harnesslab store or results file"
NOT_OURS = "database but not a harnesslab store or results file"
NOT_RESULTS = ("is an SQLite file; expected a DuckDB one", "not a complete results file")  # `report` reads results only


async def log(store) -> list[str]:
    """Sessions with a few events each, enough for a file of several pages; their ids."""
    ids = []
    try:
        for i in range(20):
            sid = await store.create_session({"task": f"task{i}", "suite": "smoke", "instance": 0, "pad": "x" * 2000})
            await store.append(sid, [Event("user.message", {"text": "hello " * 300}),
                                     Event("session.completed", {"reason": "end_turn"})], expect=1)
            ids.append(sid)
    finally:
        await store.close()
    return ids


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> dict[str, Path]:
    """A sound file of each kind the commands read: an SQLite store, a DuckDB store, a results file."""
    folder = tmp_path_factory.mktemp("sound")

    async def make() -> None:
        await log(SqliteStore(folder / "store.sqlite"))
        await log(DuckdbStore(folder / "store.duckdb"))
        await export_sessions(SqliteStore(folder / "store.sqlite", read_only=True), folder / "results.duckdb", "r1")

    asyncio.run(make())
    return {"sqlite store": folder / "store.sqlite", "duckdb store": folder / "store.duckdb",
            "results": folder / "results.duckdb"}


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def garbled(data: bytes) -> bytes:
    """The magic bytes that say what the file is, then noise."""
    noise = random.Random(19).randbytes(len(data) - 16)
    return data[:16] + noise


def foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE notes (text TEXT)")
        con.execute("INSERT INTO notes VALUES ('mine')")
    con.close()


def foreign_duckdb(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")


def partial_results(path: Path) -> None:
    """What a run killed while writing its results left before they were written under a temporary name: the
    tables written so far (runs, sessions), no events."""
    with duckdb.connect(str(path)) as con:
        for table in ("runs", "sessions"):
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{name} {kind}' for name, kind in SCHEMA[table].items())})")
        con.execute("INSERT INTO runs (run_id, config, choices) VALUES ('r1', '{}', '{}')")
        con.execute("INSERT INTO sessions (run_id, session_id, harness, model, sandbox, store, context, faults, success, "
                    "turns, tool_calls) VALUES ('r1', 'abc', 'decoupled', 'emulator', 'local', 'sqlite', 'full', 'none', "
                    "true, 1, 0)")


def spoilt(kind: str, spoil: Callable[[bytes], bytes]) -> Callable[[dict[str, Path], Path], Path]:
    """Makes, in a folder, the sound file of `kind` spoilt by `spoil`."""
    def make(sound: dict[str, Path], folder: Path) -> Path:
        path = folder / sound[kind].name
        path.write_bytes(spoil(sound[kind].read_bytes()))
        return path
    return make


def built(name: str, build: Callable[[Path], None]) -> Callable[[dict[str, Path], Path], Path]:
    """Makes, in a folder, the file `name` with `build`."""
    def make(sound: dict[str, Path], folder: Path) -> Path:
        build(folder / name)
        return folder / name
    return make


CASES = {  # case: (what makes its file in a folder, what the one line may say is wrong with it)
    **{f"{kind} {spoil.__name__}": (spoilt(kind, spoil), (DAMAGED,))
       for kind in ("sqlite store", "duckdb store", "results") for spoil in (truncated, garbled)},
    "empty .sqlite": (built("log.sqlite", lambda path: path.write_bytes(b"")), (EMPTY,)),
    "empty .duckdb": (built("log.duckdb", lambda path: path.write_bytes(b"")), (EMPTY,)),
    "foreign sqlite": (built("notes.sqlite", foreign_sqlite), (f"{NOT_OURS} (its tables: notes)",)),
    "foreign duckdb": (built("notes.duckdb", foreign_duckdb), (f"{NOT_OURS} (its tables: t)",)),
    "partial results": (built("results.duckdb", partial_results),
                        (f"{NOT_OURS} (its tables: runs, sessions)", "is not a complete results file: it has no events table")),
}
COMMANDS = {
    "ls": lambda f: ["sessions", "ls", f],
    "show": lambda f: ["sessions", "show", "abc", f],
    "export": lambda f: ["sessions", "export", f, "--to", "out/archive.duckdb"],
    "traces": lambda f: ["sessions", "traces", f, "--to", "out/traces.jsonl"],
    "replay": lambda f: ["replay", "abc", "--from", f],
    "fork": lambda f: ["fork", "abc", "--from", f, "--at", "2"],
    "report": lambda f: ["report", f, "--out", "out/report"],
}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file in `folder`: its bytes, size and mtime; an SQLite reader's -wal and -shm aside."""
    return {p.name: (p.read_bytes(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.iterdir() if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def sidecars(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(("-wal", "-shm")))


def in_wal_mode(path: Path) -> bool:
    """An SQLite file whose header says WAL (bytes 18 and 19): its readers share a -wal and -shm beside it."""
    head = path.read_bytes()[:20]
    return head.startswith(b"SQLite format 3\x00") and head[18:20] == b"\x02\x02"


def says_one_line(done: subprocess.CompletedProcess, path: str, phrases: tuple[str, ...]) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harnesslab"), done.stderr
    assert path in lines[0] and any(phrase in lines[0] for phrase in phrases), lines[0]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_a_read_command_over_a_bad_file_says_what_is_wrong_and_changes_nothing(sound, tmp_path, case, command):
    make, phrases = CASES[case]
    path = make(sound, tmp_path)
    if command == "report" and not case.startswith(("results", "partial")):
        phrases += NOT_RESULTS
    before = snapshot(tmp_path)
    done = harnesslab(*COMMANDS[command](path.name), cwd=tmp_path)
    says_one_line(done, path.name, phrases)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*"))
    if not in_wal_mode(path):
        assert sidecars(tmp_path) == []


@pytest.mark.parametrize("command", ["ls", "show", "traces", "replay", "fork"])
def test_a_partial_results_file_found_by_default_is_refused_by_name(tmp_path, command):
    """A results.duckdb an older run left half written, the newest under ./outputs: named, not read as sessions."""
    path = tmp_path / "outputs" / "2026-01-01" / "00-00-00-000000" / "results.duckdb"
    path.parent.mkdir(parents=True)
    partial_results(path)
    argv = [a for a in COMMANDS[command]("-") if a not in ("-", "--from")]
    done = harnesslab(*argv, cwd=tmp_path)
    says_one_line(done, str(path), (f"{NOT_OURS} (its tables: runs, sessions)",))


def test_reading_a_foreign_sqlite_file_adds_no_table_and_keeps_its_journal(tmp_path):
    path = tmp_path / "notes.sqlite"
    foreign_sqlite(path)
    before = path.read_bytes()
    for argv in (["sessions", "ls", "notes.sqlite"], ["sessions", "show", "abc", "notes.sqlite"]):
        assert harnesslab(*argv, cwd=tmp_path).returncode == 1
    assert path.read_bytes() == before and sidecars(tmp_path) == []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
    con.close()


def test_a_sound_store_is_read_without_a_write(sound, tmp_path):
    """Read-only all the way: the store files keep their bytes while every session is listed and shown."""
    for kind in ("sqlite store", "duckdb store", "results"):
        path = tmp_path / kind.replace(" ", "_") / sound[kind].name
        path.parent.mkdir()
        shutil.copy2(sound[kind], path)
        before = snapshot(path.parent)
        listing = harnesslab("sessions", "ls", path.name, cwd=path.parent)
        assert listing.returncode == 0 and listing.stdout.splitlines()[-1].startswith("20 session(s) in "), listing.stderr
        first = listing.stdout.splitlines()[1].split()[0]
        shown = harnesslab("sessions", "show", first, path.name, cwd=path.parent)
        assert shown.returncode == 0 and "completed    end_turn" in shown.stdout, shown.stderr
        assert snapshot(path.parent) == before


def test_a_store_damaged_in_its_events_fails_show_by_name_while_ls_still_lists(tmp_path):
    """Noise over the pages that hold the events alone: listing needs none of them, showing a session does."""
    path = tmp_path / "store.sqlite"
    ids = asyncio.run(log(SqliteStore(path)))
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = sorted(page for (page,) in con.execute("SELECT pageno FROM dbstat WHERE name = 'events'"))
        size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    for page in pages:
        data[(page - 1) * size: page * size] = random.Random(page).randbytes(size)
    path.write_bytes(bytes(data))
    assert harnesslab("sessions", "ls", "store.sqlite", cwd=tmp_path).returncode == 0
    shown = harnesslab("sessions", "show", ids[0], "store.sqlite", cwd=tmp_path)
    says_one_line(shown, "store.sqlite", (DAMAGED,))


def test_a_damaged_file_among_a_sweeps_results_is_named(sound, tmp_path):
    """Files that attach but fail when their events are read (a truncated one): the one that failed is found."""
    for job in ("0", "1"):
        (tmp_path / "sweep" / job).mkdir(parents=True)
    shutil.copy2(sound["results"], tmp_path / "sweep" / "0" / "results.duckdb")
    (tmp_path / "sweep" / "1" / "results.duckdb").write_bytes(truncated(sound["results"].read_bytes()))
    for argv in (["sessions", "ls", "sweep"], ["report", "sweep", "--out", "out"]):
        done = harnesslab(*argv, cwd=tmp_path)
        says_one_line(done, str(Path("sweep") / "1" / "results.duckdb"), (DAMAGED, "not a complete results file"))


def test_export_refuses_to_write_into_a_file_that_is_not_a_results_file(tmp_path, sound):
    foreign_duckdb(tmp_path / "notes.duckdb")
    shutil.copy2(sound["sqlite store"], tmp_path / "store.sqlite")
    before = snapshot(tmp_path)
    done = harnesslab("sessions", "export", "store.sqlite", "--to", "notes.duckdb", cwd=tmp_path)
    says_one_line(done, "notes.duckdb", ("is not a results file",))
    assert snapshot(tmp_path) == before
    again = harnesslab("sessions", "export", "store.sqlite", "--to", "archive.duckdb", cwd=tmp_path)
    assert again.returncode == 0 and "exported 20 session(s)" in again.stdout, again.stderr
    into = harnesslab("sessions", "export", "store.sqlite", "--to", "archive.duckdb", cwd=tmp_path)
    assert into.returncode == 0, into.stderr  # a results file takes more
    assert sorted(snapshot(tmp_path)) == ["archive.duckdb", "notes.duckdb", "store.sqlite"]


def test_results_that_fail_halfway_leave_no_file(tmp_path):
    path = tmp_path / "results.duckdb"
    bad = {"runs": [{"run_id": "r"}], "sessions": [{"session_id": "s", "turns": "not a number"}]}
    with pytest.raises(duckdb.Error):
        write_results(path, "r1", bad)
    assert list(tmp_path.iterdir()) == []


WRITER = """
import os, sys, time
from pathlib import Path
from experiments.results.tables import write_results

def events():  # rows handed over one by one while the file is being written; the last never comes
    yield {"session_id": "s", "position": 0, "type": "session.created", "data": "{}", "ts": 0.0, "v": 1}
    Path(sys.argv[2]).touch()
    time.sleep(600)

write_results(Path(sys.argv[1]), "r1", {"runs": [{"run_id": "r1"}], "events": events()})
"""


def test_a_run_killed_while_writing_its_results_leaves_no_results_file(tmp_path):
    out = tmp_path / "outputs" / "2026-01-01" / "00-00-00-000000"
    out.mkdir(parents=True)
    writing = tmp_path / "writing"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out / "results.duckdb"), str(writing)], cwd=Path.cwd())
    try:
        while not writing.exists():  # until the writer is inside write_results, holding its last table back
            assert writer.poll() is None, "the writer ended before it was killed"
            time.sleep(0.02)
        assert list(out.glob(".results.duckdb.partial*")), "the writer writes under another name"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert not (out / "results.duckdb").exists()
    listing = harnesslab("sessions", "ls", cwd=tmp_path)
    assert listing.returncode == 1 and "no results.duckdb under" in listing.stderr, listing.stderr
    report = harnesslab("report", "outputs", cwd=tmp_path)
    assert report.returncode == 1 and "no results.duckdb at or under outputs" in report.stderr, report.stderr


def test_read_only_stores_refuse_writes(sound):
    async def go() -> None:
        store = SqliteStore(sound["sqlite store"], read_only=True)
        try:
            with pytest.raises(PermissionError, match="opened read-only"):
                await store.create_session({"task": "x"})
        finally:
            await store.close()

    asyncio.run(go())


def test_read_table_names_a_file_that_is_no_database(tmp_path):
    path = tmp_path / "results.duckdb"
    path.write_bytes(b"not a database at all")
    from experiments.results.tables import read_table

    with pytest.raises(UnreadableFile, match="is neither an SQLite nor a DuckDB file"):
        read_table([path], "runs")


def test_an_error_quoting_a_foreign_file_prints_its_control_sequences_visibly(tmp_path):
    """A foreign file's table names reach the error line: an OSC 52 clipboard write in one is shown, not sent."""
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute('CREATE TABLE "x\x1b]52;c;aGk=\x07" (a)')
    done = harnesslab("sessions", "ls", str(foreign), cwd=tmp_path)
    assert done.returncode == 1 and NOT_OURS in done.stderr, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr and "\\x1b]52;c;aGk=\\x07" in done.stderr
