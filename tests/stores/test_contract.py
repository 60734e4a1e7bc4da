"""The SessionStore contract: every backend passes all of it, what it declares (stores/base.py) included.

The backends are tests/stores/conftest.py:BACKENDS: a store shipped in stores/ is one line in
tests/conftest.py:STORES, a store of your own one line in tests/stores/conftest.py:OWN.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hydra.utils import instantiate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stores.base import (
    MAX_DATA_DEPTH,
    MAX_SESSION_ID_LENGTH,
    Conflict,
    Event,
    InvalidEvent,
    InvalidSessionId,
    NotShared,
    SessionExists,
    SessionNotFound,
    SessionStore,
)


def ev(i: int, kind: str = "user.message") -> Event:
    return Event(kind, {"i": i})


ROOT = Path(__file__).resolve().parents[2]


async def test_backend_satisfies_protocol(store):
    assert isinstance(store, SessionStore)


async def test_backend_subclasses_the_base_and_declares_what_runners_ask(store):
    assert SessionStore in type(store).__mro__  # subclassed: the declared hooks are there, with their defaults
    assert isinstance(type(store).shared_between_processes, bool)
    await store.start()  # a no-op, or connecting early: the store works the same after
    sid = await store.create_session({})
    assert (await store.session(sid)).length == 1
    assert store.run_config(sid) is None  # a live store keeps no run's config


# Run in another process: opens the store from the config `for_workers` gave, appends to the session named.
ANOTHER_PROCESS = """
import asyncio, json, sys
from hydra.utils import instantiate
from stores.base import Event

async def main():
    store = instantiate(json.loads(sys.argv[1]))
    try:
        await store.append(sys.argv[2], [Event("user.message", {"from": "another process"})], expect=1)
        print("types:", json.dumps([e.type for e in await store.events(sys.argv[2])]))  # a store may print too
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_a_store_shared_between_processes_is_reached_from_another_with_what_for_workers_gives(store, tmp_path):
    kind = type(store)
    options = {"_target_": f"{kind.__module__}.{kind.__qualname__}"}
    if not kind.shared_between_processes:
        with pytest.raises(NotShared, match="cannot be shared between processes.*store=sqlite or store=postgres"):
            async with kind.for_workers(options, tmp_path):
                pass
        return
    async with kind.for_workers(options, tmp_path) as placed:
        assert placed.options["_target_"] == options["_target_"]
        here = instantiate(placed.options)
        try:
            sid = await here.create_session({"from": "here"})
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", ANOTHER_PROCESS, json.dumps(placed.options), sid],
                                           cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            [types] = [line.removeprefix("types: ") for line in done.stdout.splitlines() if line.startswith("types: ")]
            assert json.loads(types) == ["session.created", "user.message"]
            assert [e.data for e in await here.events(sid)] == [{"from": "here"}, {"from": "another process"}]
        finally:
            await here.close()


async def test_create_session_logs_meta_at_position_zero(store):
    sid = await store.create_session({"task": "t", "nested": {"a": [1, 2]}})
    [created] = await store.events(sid)
    assert (created.position, created.type, created.data) == (0, "session.created", {"task": "t", "nested": {"a": [1, 2]}})
    info = await store.session(sid)
    assert (info.id, info.length, info.status, info.meta) == (sid, 1, "active", {"task": "t", "nested": {"a": [1, 2]}})


async def test_append_assigns_consecutive_positions_and_returns_length(store):
    sid = await store.create_session({})
    assert await store.append(sid, [ev(1), ev(2)], expect=1) == 3
    assert await store.append(sid, [ev(3)]) == 4
    events = await store.events(sid)
    assert [e.position for e in events] == [0, 1, 2, 3]
    assert [e.data.get("i") for e in events[1:]] == [1, 2, 3]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.integers(min_value=0, max_value=5), max_size=6),
    start=st.integers(min_value=-12, max_value=12),
    stop=st.one_of(st.none(), st.integers(min_value=-12, max_value=12)),
)
def test_slices_match_a_python_list(store_factory, batches, start, stop):
    async def body():
        store = store_factory()
        try:
            await check_slices(store, batches, start, stop)
        finally:
            await store.close()

    asyncio.run(body())


async def check_slices(store, batches, start, stop):
    sid = await store.create_session({})
    model = ["session.created"]
    for size in batches:
        batch = [Event("tool.result", {"n": len(model) + i}) for i in range(size)]
        await store.append(sid, batch, expect=len(model))
        model += [f"tool.result:{e.data['n']}" for e in batch]
    got = await store.events(sid, start, stop)
    expected_positions = list(range(len(model)))[start:stop]
    assert [e.position for e in got] == expected_positions
    assert [e.type if e.position == 0 else f"{e.type}:{e.data['n']}" for e in got] == model[start:stop]


async def test_stale_expect_raises_conflict_and_appends_nothing(store):
    sid = await store.create_session({})
    await store.append(sid, [ev(1)], expect=1)
    with pytest.raises(Conflict) as caught:
        await store.append(sid, [ev(2)], expect=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert "another writer" in str(caught.value)
    assert (await store.session(sid)).length == 2


async def test_racing_writers_exactly_one_wins(store):
    sid = await store.create_session({})
    outcomes = await asyncio.gather(
        *(store.append(sid, [ev(w)], expect=1) for w in range(5)), return_exceptions=True
    )
    assert sum(1 for o in outcomes if o == 2) == 1
    assert sum(1 for o in outcomes if isinstance(o, Conflict)) == 4
    assert len(await store.events(sid)) == 2


async def test_unknown_session_is_named(store):
    for call in (store.events("nope"), store.append("nope", [ev(1)]), store.session("nope")):
        with pytest.raises(SessionNotFound, match="nope"):
            await call


def nested(levels: int, innermost: object = 1) -> dict:
    """A dict `levels` deep (a scalar counts one), built without recursion."""
    value = innermost
    for _ in range(levels - 1):
        value = {"a": value}
    return value  # type: ignore[return-value]


def deep_tuple(levels: int) -> tuple:
    value: tuple = ()
    for _ in range(levels - 1):
        value = (value,)
    return value


def cyclic() -> dict:
    loop: dict = {}
    loop["again"] = [loop]
    return loop


NOT_A_TYPE = "is not a dotted lowercase name"
NOT_A_TS = "ts .* is not a finite int or float"
NOT_A_VERSION = "v .* is not a schema version"
TOO_DEEP = f"nested more than {MAX_DATA_DEPTH} levels deep"
NOT_A_STRING_KEY = "keys must be strings"
NOT_FINITE = "which JSON cannot"

BAD_EVENTS = [
    (Event("NoDots", {}), NOT_A_TYPE),
    (Event("tool.result\n", {}), NOT_A_TYPE),
    (Event("tool.result ", {}), NOT_A_TYPE),
    (Event(" tool.result", {}), NOT_A_TYPE),
    (Event(["tool", "result"], {}), NOT_A_TYPE),  # type: ignore[arg-type]
    (Event("tool.result", {}, ts=float("nan")), NOT_A_TS),
    (Event("tool.result", {}, ts=float("inf")), NOT_A_TS),
    (Event("tool.result", {}, ts=-float("inf")), NOT_A_TS),
    (Event("tool.result", {}, ts="yesterday"), NOT_A_TS),  # type: ignore[arg-type]
    (Event("tool.result", {}, ts="1700000000"), NOT_A_TS),  # type: ignore[arg-type]
    (Event("tool.result", {}, ts=True), NOT_A_TS),
    (Event("tool.result", {}, ts=None), NOT_A_TS),  # type: ignore[arg-type]
    (Event("tool.result", {}, ts=10**400), NOT_A_TS),
    (Event("tool.result", {}, v="1"), NOT_A_VERSION),  # type: ignore[arg-type]
    (Event("tool.result", {}, v=1.0), NOT_A_VERSION),  # type: ignore[arg-type]
    (Event("tool.result", {}, v=True), NOT_A_VERSION),
    (Event("tool.result", {}, v=-1), NOT_A_VERSION),
    (Event("tool.result", {}, v=2**31), NOT_A_VERSION),
    (Event("tool.result", {"x": object()}), "not JSON-serialisable"),
    (Event("tool.result", {"x": float("nan")}), NOT_FINITE),
    (Event("tool.result", {"x": [1, {"y": (2, float("inf"))}]}), NOT_FINITE),
    (Event("tool.result", ["not", "a", "dict"]), "must be a dict"),  # type: ignore[arg-type]
    (Event("tool.result", {"output": "half a pair: \udc80"}), "not valid Unicode text: a lone surrogate"),
    (Event("tool.result", {1: "one"}), NOT_A_STRING_KEY),  # type: ignore[dict-item]
    (Event("tool.result", {"x": [{"ok": 1, None: 2}]}), NOT_A_STRING_KEY),
    (Event("tool.result", {"x": {True: 1}}), NOT_A_STRING_KEY),
    (Event("tool.result", {"x": {1.5: 1}}), NOT_A_STRING_KEY),
    (Event("tool.result", {deep_tuple(10_000): 1}), NOT_A_STRING_KEY),  # quoted abridged, not with repr()
    (Event("tool.result", nested(MAX_DATA_DEPTH + 1)), TOO_DEEP),
    (Event("tool.result", nested(MAX_DATA_DEPTH, [1])), TOO_DEEP),
    (Event("tool.result", nested(10_000)), TOO_DEEP),  # once RecursionError
    (Event("tool.result", cyclic()), TOO_DEEP),
]


@pytest.mark.parametrize("bad, message", BAD_EVENTS)
async def test_invalid_event_rejected_and_batch_is_atomic(store, bad, message):
    sid = await store.create_session({})
    with pytest.raises(InvalidEvent, match=message):
        await store.append(sid, [ev(1), bad], expect=1)
    assert (await store.session(sid)).length == 1
    assert [e.type for e in await store.events(sid)] == ["session.created"]  # the session still reads


@pytest.mark.parametrize("meta", [{1: "x"}, {"x": float("nan")}, nested(MAX_DATA_DEPTH + 1)])
async def test_invalid_meta_creates_no_session(store, meta):
    with pytest.raises(InvalidEvent, match="session.created data"):
        await store.create_session(meta, session_id="never")
    with pytest.raises(SessionNotFound):
        await store.session("never")
    assert await store.sessions() == []


async def test_data_at_the_depth_bound_and_whole_number_ts_round_trip(store):
    sid = await store.create_session({})
    deepest = nested(MAX_DATA_DEPTH, {})
    await store.append(sid, [Event("tool.result", deepest, ts=1_700_000_000, v=0)], expect=1)
    [got] = await store.events(sid, 1)
    assert (got.data, got.ts, type(got.ts), got.v) == (deepest, 1_700_000_000.0, float, 0)


async def test_unknown_type_from_newer_schema_round_trips(store):
    sid = await store.create_session({})
    future = Event("hologram.projected", {"beam": {"deg": 42}}, ts=1234.5, v=99)
    await store.append(sid, [future], expect=1)
    [got] = await store.events(sid, -1)
    assert (got.type, got.data, got.ts, got.v, got.position) == ("hologram.projected", {"beam": {"deg": 42}}, 1234.5, 99, 1)


async def test_stored_data_is_isolated_from_caller_mutation(store):
    sid = await store.create_session({})
    data = {"items": [1]}
    await store.append(sid, [Event("tool.result", data)], expect=1)
    data["items"].append(2)
    [got] = await store.events(sid, 1)
    got.data["items"].append(3)
    assert (await store.events(sid, 1))[0].data == {"items": [1]}


async def test_status_follows_terminal_events_and_new_user_messages(store):
    a = await store.create_session({"n": "a"})
    b = await store.create_session({"n": "b"})
    await store.append(a, [Event("session.completed", {"reason": "end_turn"})], expect=1)
    await store.append(b, [Event("session.failed", {"reason": "x"})], expect=1)
    assert [s.id for s in await store.sessions(status="completed")] == [a]
    assert [s.id for s in await store.sessions(status="failed")] == [b]
    await store.append(a, [ev(1)], expect=2)
    assert (await store.session(a)).status == "active"
    assert [s.id for s in await store.sessions()] == [a, b]
    assert len(await store.sessions(limit=1)) == 1


async def test_session_times_come_from_its_log(store):
    sid = await store.create_session({})
    await store.append(sid, [Event("user.message", {}, ts=2_000_000_000.5), Event("tool.result", {}, ts=2_000_000_001.25)])
    await store.append(sid, [], expect=3)  # an empty append changes nothing
    first, *_, last = await store.events(sid)
    info = await store.session(sid)
    assert (info.created, info.updated, info.length) == (first.ts, last.ts, 3) == (first.ts, 2_000_000_001.25, 3)


async def test_duplicate_session_id_rejected(store):
    await store.create_session({}, session_id="fixed")
    with pytest.raises(SessionExists, match="already exists"):
        await store.create_session({}, session_id="fixed")
    assert len(await store.events("fixed")) == 1


BAD_SESSION_IDS = [
    ("", "is empty"),
    ("a\x00b", "'a\\x00b' holds a control or other unprintable character"),
    ("tab\there", "unprintable"),
    ("line\n", "unprintable"),
    ("\x1b[31mred", "unprintable"),
    ("lone \udc80", "unprintable"),
    ("x" * (MAX_SESSION_ID_LENGTH + 1), f"is {MAX_SESSION_ID_LENGTH + 1} characters long"),
    (12, "is of type int, not str"),
    (b"bytes", "is of type bytes, not str"),
]


@pytest.mark.parametrize("bad, message", BAD_SESSION_IDS)
async def test_invalid_session_id_refused_at_the_door(store, bad, message):
    valid = f"1 to {MAX_SESSION_ID_LENGTH} printable characters"
    with pytest.raises(InvalidSessionId, match=f"session id .*{re.escape(message)}.*{valid}"):
        await store.create_session({}, session_id=bad)
    sid = await store.create_session({})
    with pytest.raises(InvalidSessionId, match=re.escape(message)):
        await store.append(bad, [ev(1)])
    with pytest.raises(InvalidSessionId, match=re.escape(message)):
        await store.append(bad, [])
    for read in (store.session(bad), store.events(bad)):  # a NUL failed in PostgreSQL's driver
        with pytest.raises(InvalidSessionId, match=re.escape(message)):
            await read
    assert [info.id for info in await store.sessions()] == [sid]


@pytest.mark.parametrize("good", [uuid.uuid4().hex, str(uuid.uuid4()), "sess-3f2a", "s1", "fork of é 漢字 😀",
                                  "x" * MAX_SESSION_ID_LENGTH])
async def test_project_made_session_ids_are_valid(store, good):
    assert await store.create_session({}, session_id=good) == good
    assert await store.append(good, [ev(1)]) == 2
    assert (await store.session(good)).id == good


async def test_concurrent_appends_without_expect_all_land_whole_and_in_some_order(store):
    a, b = await store.create_session({}), await store.create_session({})
    lengths = await asyncio.gather(*(store.append(sid, [ev(n), ev(n)]) for n in range(6) for sid in (a, b)))
    assert sorted(lengths) == sorted([3, 5, 7, 9, 11, 13] * 2)
    for sid in (a, b):
        events = await store.events(sid)
        assert [e.position for e in events] == list(range(13))
        pairs = [e.data["i"] for e in events[1:]]
        assert pairs[::2] == pairs[1::2] and sorted(pairs[::2]) == list(range(6))  # each append's events together


async def test_creating_one_session_id_at_once_twice_makes_one_session(store):
    outcomes = await asyncio.gather(*(store.create_session({"n": n}, session_id="twice") for n in range(2)),
                                    return_exceptions=True)
    assert "twice" in outcomes and sum(isinstance(o, SessionExists) for o in outcomes) == 1
    assert len(await store.events("twice")) == 1


async def test_any_text_round_trips_exactly(store):
    text = 'quotes " \' back\\slash, tab\t newline\n NUL\x00 bell\x07 accents é ü, CJK 漢字, emoji 😀 \u2028 \ufeff'
    sid = await store.create_session({"meta": text})
    await store.append(sid, [Event("tool.result", {"output": text, text: [text]}, ts=1795551033.5369015)], expect=1)
    first, event = await store.events(sid)
    assert first.data == {"meta": text} and event.data == {"output": text, text: [text]} and event.ts == 1795551033.5369015
