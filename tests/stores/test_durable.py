"""Durable stores across processes: SIGKILL, several writers, DuckDB's single writer, corrupt rows."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from stores.base import CorruptEvent, Event, StoreError, StoreUnavailable
from tests.conftest import require, store_params
from tests.stores.durable import open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=store_params(["sqlite", "duckdb", "postgres"]))
def durable(request, tmp_path):
    """(kind, target): how this process and its children open one and the same store."""
    if request.param == "postgres":
        return "postgres", f"{request.getfixturevalue('postgres_dsn')}#t_{uuid.uuid4().hex[:12]}"
    return request.param, str(tmp_path / f"store.{request.param}")


def child(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


WRITER = """
    import asyncio, sys
    from stores.base import Event
    from tests.stores.durable import open_store

    async def main(kind, target):
        store = open_store(kind, target)
        sid = await store.create_session({}, session_id="victim")
        length = 1
        while True:
            length = await store.append(sid, [Event("tool.result", {"n": length})], expect=length)
            print(length, flush=True)  # acknowledged: durable before this line is written

    asyncio.run(main(*sys.argv[1:]))
"""


async def test_acknowledged_appends_survive_sigkill(durable):
    proc = child(WRITER, *durable)
    acknowledged = 0
    try:
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 100:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and acknowledged >= 100, proc.stderr.read()
    store = open_store(*durable)
    try:
        events = await store.events("victim")
        assert len(events) >= acknowledged
        assert [e.position for e in events] == list(range(len(events)))
        assert all(e.data["n"] == e.position for e in events[1:])
    finally:
        await store.close()


RACER = """
    import asyncio, sys
    from stores.base import Conflict, Event
    from tests.stores.durable import open_store

    async def main(kind, target, sid, name, count):
        store = open_store(kind, target)
        done = conflicts = 0
        while done < int(count):
            length = (await store.session(sid)).length
            try:
                await store.append(sid, [Event("tool.result", {"by": name, "k": done})], expect=length)
                done += 1
            except Conflict:
                conflicts += 1
        mine = await store.create_session({"by": name})
        for k in range(int(count)):
            await store.append(mine, [Event("tool.result", {"k": k})], expect=k + 1)
        print(conflicts, mine, flush=True)
        await store.close()

    asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.slow
async def test_writers_in_several_processes_leave_no_gaps_or_duplicates(durable):
    kind, target = durable
    if kind == "duckdb":
        pytest.skip("DuckDB allows one writing process per file (see test_duckdb_second_writer_gets_a_clear_error)")
    store = open_store(kind, target)
    try:
        shared = await store.create_session({}, session_id="shared")
        procs = [child(RACER, kind, target, shared, f"w{i}", "40") for i in range(4)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
        events = await store.events(shared)
        assert [e.position for e in events] == list(range(1 + 4 * 40))
        for i in range(4):
            assert [e.data["k"] for e in events if e.data.get("by") == f"w{i}"] == list(range(40))
        for out, _ in outputs:  # each process's own session is whole too
            mine = out.split()[1]
            assert [e.data.get("k") for e in await store.events(mine, 1)] == list(range(40))
    finally:
        await store.close()


async def test_duckdb_second_writer_gets_a_clear_error(tmp_path):
    target = str(tmp_path / "one.duckdb")
    holder = child(WRITER, "duckdb", target)
    try:
        holder.stdout.readline()  # the holder has the file open
        store = open_store("duckdb", target)
        with pytest.raises(StoreError, match="DuckDB allows one writing process per file"):
            await asyncio.wait_for(store.sessions(), timeout=30)
        await store.close()
    finally:
        holder.kill()
        holder.wait()


def corrupt(kind: str, target: str, session_id: str, data: str) -> None:
    """Overwrite the stored data of position 0 behind the store's back."""
    embedded = "UPDATE events SET data = ? WHERE position = 0 AND session_key = (SELECT key FROM sessions WHERE id = ?)"
    if kind == "sqlite":
        with sqlite3.connect(target) as con:
            con.execute(embedded, (data, session_id))
    elif kind == "duckdb":
        import duckdb

        with duckdb.connect(target) as con:
            con.execute(embedded, (data, session_id))
    else:
        import psycopg

        dsn, schema = target.rsplit("#", 1)
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f"UPDATE {schema}.events SET data = %s WHERE session_id = %s AND position = 0", (data, session_id))


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]"])
async def test_corrupt_row_names_session_and_position(durable, damage):
    kind, target = durable
    store = open_store(kind, target)
    try:
        sid = await store.create_session({})
        if kind == "duckdb":
            await store.close()  # let go of the file so another connection can damage it
        corrupt(kind, target, sid, damage)
        store = open_store(kind, target)
        with pytest.raises(CorruptEvent, match=f"session {sid}, position 0") as caught:
            await store.events(sid)
        assert caught.value.position == 0
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_notifies_a_waiting_harness_of_new_events(postgres_dsn):
    target = f"{postgres_dsn}#t_{uuid.uuid4().hex[:12]}"
    waiting, writing = open_store("postgres", target), open_store("postgres", target)
    try:
        sid = await writing.create_session({})
        assert await waiting.wait_for_events(sid, after=1, timeout=0.2) == 1  # nothing new: times out
        waiter = asyncio.create_task(waiting.wait_for_events(sid, after=1, timeout=30))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await writing.append(sid, [Event("user.message", {"text": "hi"})], expect=1)
        assert await asyncio.wait_for(waiter, 10) == 2
        assert await waiting.wait_for_events(sid, after=0) == 2  # already longer: returns at once
    finally:
        await waiting.close()
        await writing.close()


def require_postgres_server() -> None:
    """For tests that start (and restart) servers of their own: the server binaries must be here."""
    from stores.postgres_server import PostgresUnavailable, server_bindir

    try:
        server_bindir()
    except PostgresUnavailable as exc:
        require("postgres", str(exc))


@contextlib.asynccontextmanager
async def store_on_own_server():
    """(a throwaway PostgreSQL server, a store on it): for tests that stop and restart the server."""
    from stores.postgres import PostgresStore
    from stores.postgres_server import LocalPostgres

    require_postgres_server()
    server = LocalPostgres()
    store = PostgresStore(await asyncio.to_thread(server.start), connect_timeout_s=3)
    try:
        yield server, store
    finally:
        await store.close()
        server.remove()


@pytest.mark.postgres
async def test_postgres_restarted_under_a_store_loses_no_acknowledged_event_and_the_store_carries_on():
    async with store_on_own_server() as (server, store):
        session = await store.create_session({"task": "restart"})
        await store.append(session, [Event("user.message", {"n": 0})], expect=1)
        await asyncio.to_thread(server.stop, "immediate")  # a crash: no shutdown checkpoint
        with pytest.raises(StoreUnavailable, match="unavailable|cannot connect"):
            await store.append(session, [Event("user.message", {"n": 1})], expect=2)
        await asyncio.to_thread(server.start)
        await store.append(session, [Event("user.message", {"n": 2})], expect=2)  # the same store, new connections
        assert [e.data.get("n") for e in await store.events(session)] == [None, 0, 2]


@pytest.mark.postgres
async def test_a_postgres_restart_while_the_store_is_idle_goes_unnoticed_by_its_next_call():
    """Pooled connections the restart closed are replaced when handed out, not failed on."""
    async with store_on_own_server() as (server, store):
        session = await store.create_session({"task": "restart"})
        await asyncio.to_thread(server.stop, "fast")
        await asyncio.to_thread(server.start)
        await store.append(session, [Event("user.message", {"n": 1})], expect=1)
        assert [e.data.get("n") for e in await store.events(session)] == [None, 1]
