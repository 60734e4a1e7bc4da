"""Any store's sessions export into results.duckdb and read back identically through ArchiveStore."""
from __future__ import annotations

import pytest

from stores.archive import ArchiveStore, ReadOnlyStore, export_sessions
from stores.base import Event, SessionNotFound, StoreError


async def fill(store) -> list[str]:
    a = await store.create_session({"task": "a", "ünïcode": "✓"})
    await store.append(a, [
        Event("user.message", {"text": "hi"}),
        Event("model.response", {"content": [{"type": "text", "text": "done"}], "usage": {"input_tokens": 3}}),
        Event("hologram.projected", {"deg": 42}, v=99),
        Event("session.completed", {"reason": "end_turn"}),
    ], expect=1)
    b = await store.create_session({"task": "b"})
    await store.append(b, [Event("user.message", {"text": "still going"})], expect=1)
    return [a, b]


async def test_archive_reads_back_exactly_what_the_store_holds(store, tmp_path):
    ids = await fill(store)
    path = tmp_path / "results.duckdb"
    assert await export_sessions(store, path, run_id="r1") == 2
    archive = ArchiveStore(path)
    try:
        for sid in ids:
            assert await archive.events(sid) == await store.events(sid)
            assert await archive.events(sid, -2, -1) == await store.events(sid, -2, -1)
            live, archived = await store.session(sid), await archive.session(sid)
            assert archived == live
        assert [s.id for s in await archive.sessions(status="completed")] == [ids[0]]
        assert [s.id for s in await archive.sessions(status="active")] == [ids[1]]
        with pytest.raises(SessionNotFound):
            await archive.events("nope")
        with pytest.raises(ReadOnlyStore, match="read-only"):
            await archive.append(ids[0], [Event("user.message", {})])
    finally:
        await archive.close()


async def test_archive_spans_files_and_ignores_a_session_archived_twice(store, tmp_path):
    ids = await fill(store)
    first, second = tmp_path / "1" / "results.duckdb", tmp_path / "2" / "results.duckdb"
    await export_sessions(store, first, "r1")
    await export_sessions(store, second, "r2", [ids[0]])
    archive = ArchiveStore([first, second])
    try:
        assert sorted(s.id for s in await archive.sessions()) == sorted(ids)
        assert len(await archive.events(ids[0])) == 5
    finally:
        await archive.close()


def test_missing_archive_is_named(tmp_path):
    with pytest.raises(StoreError, match="no results file at .*nothing.duckdb"):
        ArchiveStore(tmp_path / "nothing.duckdb")
