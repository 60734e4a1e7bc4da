"""A bad event fails alone: refused at the door before it joins a group commit, and a write the database itself
refuses in a shared batch fails alone too, while the other sessions' appends in that batch commit."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from stores.base import MAX_DATA_DEPTH, Event, InvalidEvent
from stores.batch import BatchWriter
from stores.postgres import PostgresStore
from tests.conftest import store_params
from tests.stores.test_contract import nested

SESSIONS = 9


def spy_on_batches(store) -> list[list[str]]:
    """The session ids of every batch the store's group commit hands to its database (none for the memory store)."""
    batches: list[list[str]] = []
    group = store._group if isinstance(store, BatchWriter) else None
    if group is not None:
        inner = group._commit

        async def spy(writes):
            batches.append([write.session_id for write in writes])
            return await inner(writes)

        group._commit = spy
    return batches


BAD = {
    "nan ts": Event("user.message", {}, ts=float("nan")),  # once failed the whole batch on SQLite and DuckDB
    "inf ts": Event("user.message", {}, ts=float("inf")),  # and on PostgreSQL
    "ts in words": Event("user.message", {}, ts="yesterday"),  # type: ignore[arg-type]
    "v too big for its column": Event("user.message", {}, v=2**31),
    "type with a newline": Event("user.message\n", {}),
    "integer key": Event("user.message", {1: "one"}),  # type: ignore[dict-item]
    "too deep": Event("user.message", nested(MAX_DATA_DEPTH * 10)),
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
async def test_a_bad_event_among_concurrent_appends_of_other_sessions_fails_alone(store, bad):
    ids = [await store.create_session({"n": n}) for n in range(SESSIONS)]
    batches = spy_on_batches(store)
    victim = ids[SESSIONS // 2]
    outcomes = await asyncio.gather(
        *(store.append(sid, [bad if sid == victim else Event("user.message", {"n": n})], expect=1)
          for n, sid in enumerate(ids)),
        return_exceptions=True,
    )
    assert isinstance(outcomes.pop(SESSIONS // 2), InvalidEvent)
    assert outcomes == [2] * (SESSIONS - 1)
    for n, sid in enumerate(ids):
        expected = [{"n": n}] if sid == victim else [{"n": n}, {"n": n}]
        assert [e.data for e in await store.events(sid)] == expected
    assert victim not in [sid for batch in batches for sid in batch]  # refused before it was batched


async def refuse_repeated_data(store):
    """The same store, reopened with a unique index on event data: a real refusal by the database (an
    IntegrityError at insert) of a write whose event repeats the data of one already stored."""
    if isinstance(store, PostgresStore):
        import psycopg

        async with await psycopg.AsyncConnection.connect(store.dsn, autocommit=True) as conn:
            await conn.execute(f"CREATE UNIQUE INDEX refuse_repeats ON {store.schema}.events (data)")
        return store
    await store.close()
    if store.path.suffix == ".sqlite":
        with sqlite3.connect(store.path) as con:
            con.execute("CREATE UNIQUE INDEX refuse_repeats ON events (data)")
        con.close()
    else:
        import duckdb

        with duckdb.connect(str(store.path)) as con:
            con.execute("CREATE UNIQUE INDEX refuse_repeats ON events (data)")
    return type(store)(store.path)


def refused(outcome) -> bool:
    return any(cls.__name__ == "IntegrityError" for cls in type(outcome).__mro__)


@pytest.mark.parametrize("store_factory", store_params(["sqlite", "duckdb", "postgres"]), indirect=True)
async def test_a_write_the_database_refuses_fails_alone_in_its_batch(store_factory):
    store = store_factory()
    try:
        ids = [await store.create_session({"n": n}) for n in range(8)]
        store = await refuse_repeated_data(store)
        batches = spy_on_batches(store)
        repeat = Event("user.message", {"n": 3})  # the data of session 3's session.created
        first = await asyncio.gather(
            *(store.append(sid, [Event("user.message", {"said": n})]) for n, sid in enumerate(ids[:7])),
            store.append(ids[7], [repeat]),
            return_exceptions=True,
        )
        assert first[:7] == [2] * 7 and refused(first[7]), first
        assert any(ids[7] in batch and ids[6] in batch for batch in batches)  # it shared a batch with good writes
        # PostgreSQL commits a session's second write of a batch in a second statement, after the first has committed
        second = await asyncio.gather(
            *(store.append(sid, [Event("user.message", {"again": n})]) for n, sid in enumerate(ids)),
            store.append(ids[0], [Event("user.message", {"more": 0})]),
            store.append(ids[1], [repeat]),
            return_exceptions=True,
        )
        assert second[:9] == [3] * 7 + [2, 4] and refused(second[9]), second
        logs = [[e.data for e in await store.events(sid)] for sid in ids]
        assert logs[0] == [{"n": 0}, {"said": 0}, {"again": 0}, {"more": 0}]  # each committed once, in order
        assert logs[1:7] == [[{"n": n}, {"said": n}, {"again": n}] for n in range(1, 7)]
        assert logs[7] == [{"n": 7}, {"again": 7}]
    finally:
        await store.close()
