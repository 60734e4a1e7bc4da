"""SQLite durability: what a killed writer acknowledged is there on reopen; corrupt rows are named."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from stores.base import CorruptEvent
from stores.sqlite import SqliteStore

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from stores.base import Event
    from stores.sqlite import SqliteStore

    async def main():
        store = SqliteStore(sys.argv[1])
        sid = await store.create_session({}, session_id="victim")
        length = 1
        while True:
            length = await store.append(sid, [Event("tool.result", {"n": length})], expect=length)
            print(length, flush=True)  # acknowledged: durable before this line is written

    asyncio.run(main())
    """
)


async def test_acknowledged_appends_survive_sigkill(tmp_path):
    path = tmp_path / "log.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    try:
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 200:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = SqliteStore(path)
    try:
        events = await store.events("victim")
        assert len(events) >= acknowledged
        assert [e.position for e in events] == list(range(len(events)))
        assert all(e.data["n"] == e.position for e in events[1:])
    finally:
        await store.close()


async def test_reopened_store_sees_everything(tmp_path):
    first = SqliteStore(tmp_path / "s.sqlite")
    sid = await first.create_session({"k": 1})
    await first.close()
    second = SqliteStore(tmp_path / "s.sqlite")
    try:
        assert (await second.session(sid)).meta == {"k": 1}
    finally:
        await second.close()


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]"])
async def test_corrupt_row_names_session_and_position(tmp_path, damage):
    store = SqliteStore(tmp_path / "s.sqlite")
    try:
        sid = await store.create_session({})
        with sqlite3.connect(tmp_path / "s.sqlite") as con:
            con.execute("UPDATE events SET data = ? WHERE session_id = ? AND position = 0", (damage, sid))
        with pytest.raises(CorruptEvent, match=f"session {sid}, position 0") as caught:
            await store.events(sid)
        assert caught.value.position == 0
    finally:
        await store.close()
