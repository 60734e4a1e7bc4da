"""Store benchmarks: append rate and latency, whole-session reads, storage growth, and LangGraph.

Every backend runs side by side in one process; PostgreSQL is a throwaway local cluster (or
HARNESSLAB_POSTGRES_DSN). Nothing here asserts: it reports medians, p95 and ratios.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from experiments.bench.targets import target
from experiments.stats import percentile
from stores.base import Event
from stores.events import ModelResponse, ToolCall, ToolResult

BACKENDS = ("memory", "sqlite", "duckdb", "postgres")


def step_events(step: int) -> list[Event]:
    """One agent step as the decoupled harness logs it: a response, the tool call, its result."""
    use = {"type": "tool_use", "id": f"toolu_{step:05d}", "name": "bash", "input": {"command": f"grep -n TODO src/module_{step}.py"}}
    return [
        ModelResponse([{"type": "text", "text": "Let me look."}, use], "tool_use",
                      usage={"input_tokens": 1200 + step, "output_tokens": 40}, ttft_ms=310.5, latency_ms=820.2).event(),
        ToolCall(use["id"], "bash", use["input"], "local", f"s:{use['id']}", "main").event(),
        ToolResult(use["id"], "bash", "".join(f"{40 + i}: # TODO handle case {i} of step {step}\n" for i in range(6)),
                   is_error=False, duration_ms=3.2).event(),
    ]


class Backends:
    """Opens fresh stores of each backend in one scratch folder (and one PostgreSQL cluster)."""

    def __init__(self, root: Path):
        self.root, self.dsn, self.server, self.unavailable = root, os.environ.get("HARNESSLAB_POSTGRES_DSN"), None, {}

    def available(self) -> list[str]:
        if self.dsn is None:
            from stores.postgres_server import LocalPostgres, PostgresUnavailable

            try:
                self.server = LocalPostgres()
                self.dsn = self.server.start()
            except PostgresUnavailable as exc:
                self.unavailable["postgres"] = str(exc).splitlines()[0]
        return [b for b in BACKENDS if b not in self.unavailable]

    def open(self, kind: str, group_commit: bool = True) -> Any:
        name = uuid.uuid4().hex[:12]
        if kind == "memory":
            from stores.memory import MemoryStore

            return MemoryStore()
        if kind == "sqlite":
            from stores.sqlite import SqliteStore

            return SqliteStore(self.root / f"{name}.sqlite", group_commit=group_commit)
        if kind == "duckdb":
            from stores.duckdb import DuckdbStore

            return DuckdbStore(self.root / f"{name}.duckdb", group_commit=group_commit)
        from stores.postgres import PostgresStore

        return PostgresStore(self.dsn, schema=f"bench_{name}", group_commit=group_commit, pool_size=16)

    def close(self) -> None:
        if self.server is not None:
            self.server.remove()


async def append_rate(backends: Backends, kind: str, group_commit: bool, sessions: int, seconds: float) -> tuple[float, list[float]]:
    """Events/s and per-append latencies (ms): `sessions` writers, one event per append, for `seconds`."""
    store = backends.open(kind, group_commit)
    latencies: list[float] = []
    event = step_events(0)[2]
    try:
        ids = [await store.create_session({"bench": True}) for _ in range(sessions)]
        started = time.perf_counter()
        deadline = started + seconds

        async def writer(sid: str) -> None:
            length = 1
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                length = await store.append(sid, [event], expect=length)
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(writer(sid) for sid in ids))
        return len(latencies) / (time.perf_counter() - started), latencies
    finally:
        await store.close()


async def batched_rate(backends: Backends, kind: str, per_append: int, events: int) -> float:
    """Events/s for one session appending `per_append` events per call."""
    store = backends.open(kind)
    try:
        sid, length = await store.create_session({"bench": True}), 1
        batch = [e for step in range(per_append) for e in step_events(step)][:per_append]
        started = time.perf_counter()
        while length <= events:
            length = await store.append(sid, batch, expect=length)
        return (length - 1) / (time.perf_counter() - started)
    finally:
        await store.close()


async def fill(store: Any, events: int) -> str:
    sid = await store.create_session({"bench": True})
    length, step = 1, 0
    while length - 1 < events:
        batch = [e for s in range(step, step + 50) for e in step_events(s)][: events - (length - 1)]
        length = await store.append(sid, batch, expect=length)
        step += 50
    return sid


async def read_ms(backends: Backends, kind: str, events: int, repeats: int) -> float:
    store = backends.open(kind)
    try:
        sid = await fill(store, events)
        timings = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            assert len(await store.events(sid)) == events + 1
            timings.append((time.perf_counter() - t0) * 1000)
        return statistics.median(timings)
    finally:
        await store.close()


async def bytes_on_disk(backends: Backends, kind: str, events: int) -> int:
    """Size of a store holding one session of `events` events, once closed (checkpointed)."""
    store = backends.open(kind)
    await fill(store, events)
    if kind == "postgres":
        async with store._connection() as conn:
            cur = await conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'", (store.schema,))
            size = int((await cur.fetchone())[0])
        await store.close()
        return size
    await store.close()
    return sum(p.stat().st_size for p in store.path.parent.glob(store.path.name + "*"))


def langgraph_steps(path: Path, marks: list[int]) -> dict[int, tuple[float, int]]:
    """LangGraph's SqliteSaver checkpointing the conversation state after every step.

    Returns, at each mark: (median ms per step over the last 10 steps, bytes on disk)."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite import SqliteSaver

    saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    saver.setup()
    config: dict[str, Any] = {"configurable": {"thread_id": "bench", "checkpoint_ns": ""}}
    messages: list[dict[str, Any]] = []
    timings: list[float] = []
    found = {}
    for step in range(1, max(marks) + 1):
        messages += [{"type": e.type, **e.data} for e in step_events(step)]
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": list(messages)}
        checkpoint["channel_versions"] = {"messages": step}
        t0 = time.perf_counter()
        config = saver.put(config, checkpoint, {"source": "loop", "step": step}, {"messages": step})
        timings.append((time.perf_counter() - t0) * 1000)
        if step in marks:
            found[step] = (statistics.median(timings[-10:]), sqlite_bytes(path))
    saver.conn.close()
    return found


def sqlite_bytes(path: Path) -> int:
    """Size of a SQLite database with its WAL checkpointed into it, so both sides count the same way."""
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def event_log_steps(backends: Backends, marks: list[int]) -> dict[int, tuple[float, int]]:
    """The same steps appended to the SQLite session log: three events per step, one durable append."""
    store = backends.open("sqlite")
    sid, length = await store.create_session({"bench": True}), 1
    timings, found = [], {}
    for step in range(1, max(marks) + 1):
        t0 = time.perf_counter()
        length = await store.append(sid, step_events(step), expect=length)
        timings.append((time.perf_counter() - t0) * 1000)
        if step in marks:
            found[step] = (statistics.median(timings[-10:]), sqlite_bytes(store.path))
    await store.close()
    return found


async def main(quick: bool) -> None:
    seconds = 0.5 if quick else 1.5
    root = Path(tempfile.mkdtemp(prefix="harnesslab-bench-"))
    backends = Backends(root)
    try:
        kinds = backends.available()
        for kind, why in backends.unavailable.items():
            print(f"({kind} skipped: {why})")
        await report_appends(backends, kinds, seconds)
        await report_batches(backends, kinds, quick)
        await report_reads(backends, kinds, quick)
        await report_storage(backends, kinds, quick)
        await report_langgraph(backends, root, quick)
    finally:
        backends.close()
        shutil.rmtree(root, ignore_errors=True)


async def report_appends(backends: Backends, kinds: list[str], seconds: float) -> None:
    print(f"\nappends, one event each ({seconds:g} s per cell; durable before acknowledged, except memory)")
    print(f"  {'backend':<9} {'commit':<7} {'sessions':>8} {'events/s':>11} {'p50 ms':>8} {'p95 ms':>8}")
    rates: dict[tuple[str, bool, int], float] = {}
    for kind in kinds:
        for group in ((True,) if kind == "memory" else (False, True)):
            for sessions in (1, 64):
                rate, latencies = await append_rate(backends, kind, group, sessions, seconds)
                rates[kind, group, sessions] = rate
                mode = "group" if group else "single"
                print(f"  {kind:<9} {mode if kind != 'memory' else '-':<7} {sessions:>8} {rate:>11,.0f} "
                      f"{statistics.median(latencies):>8.3f} {percentile(latencies, 0.95):>8.3f}")
    for kind in (k for k in kinds if k != "memory"):
        print(f"  {kind}: group commit at 64 sessions = {rates[kind, True, 64] / rates[kind, False, 64]:.1f}x single-event "
              f"commits at 64, {rates[kind, True, 64] / rates[kind, False, 1]:.1f}x one writer's single-event rate")
    for line in append_targets(rates):
        print(f"  {line}")


def append_targets(rates: dict[tuple[str, bool, int], float]) -> list[str]:
    """The targets of group commit at 64 sessions, one event per append; a backend not run is not measured."""
    group, single = rates.get(("duckdb", True, 64)), rates.get(("duckdb", False, 64))
    duckdb_ratio = group / single if group is not None and single else None
    return [
        target("sqlite group commit, 64 sessions", rates.get(("sqlite", True, 64)), ">=", 50_000, " events/s"),
        target("duckdb group commit / single-event commits, 64 sessions", duckdb_ratio, ">=", 20, "x"),
        target("postgres group commit, 64 sessions", rates.get(("postgres", True, 64)), ">=", 20_000, " events/s"),
    ]


async def report_batches(backends: Backends, kinds: list[str], quick: bool) -> None:
    print("\none session, events per append: 1 vs 100 (durable stores)")
    print(f"  {'backend':<9} {'1 per append':>14} {'100 per append':>15} {'ratio':>7}")
    batched_rates = {}
    for kind in (k for k in kinds if k != "memory"):
        single = await batched_rate(backends, kind, 1, 300 if quick else 1_000)
        batched = batched_rates[kind] = await batched_rate(backends, kind, 100, 3_000 if quick else 10_000)
        print(f"  {kind:<9} {single:>14,.0f} {batched:>15,.0f} {batched / single:>6.1f}x")
    print(f"  {target('sqlite, 100 events per append', batched_rates.get('sqlite'), '>=', 20_000, ' events/s')}")


async def report_reads(backends: Backends, kinds: list[str], quick: bool) -> None:
    print("\nreading a whole session (median ms)")
    sizes = (1_000,) if quick else (1_000, 10_000)
    print(f"  {'backend':<9} " + " ".join(f"{f'{n:,} events':>14}" for n in sizes))
    first_size = {}
    for kind in kinds:
        timings = [await read_ms(backends, kind, n, 5) for n in sizes]
        first_size[kind] = timings[0]
        print(f"  {kind:<9} " + " ".join(f"{ms:>14.2f}" for ms in timings))
    print(f"  {target('1,000 events from sqlite', first_size.get('sqlite'), '<=', 5, ' ms')}")


async def report_storage(backends: Backends, kinds: list[str], quick: bool) -> None:
    sizes = (10, 100, 1_000) if quick else (10, 100, 1_000, 10_000)
    print("\nbytes on disk per event as one session grows (total / events; marginal: growth per added event)")
    print(f"  {'backend':<9} " + " ".join(f"{n:>9,}" for n in sizes) + "   marginal " + " ".join(f"{n:>7,}" for n in sizes[1:]))
    for kind in (k for k in kinds if k != "memory"):
        totals = [await bytes_on_disk(backends, kind, n) for n in sizes]
        marginal = [(b - a) / (n - m) for (a, m), (b, n) in zip(zip(totals, sizes), zip(totals[1:], sizes[1:]))]
        print(f"  {kind:<9} " + " ".join(f"{t / n:>9,.0f}" for t, n in zip(totals, sizes))
              + "            " + " ".join(f"{m:>7,.0f}" for m in marginal))


async def report_langgraph(backends: Backends, root: Path, quick: bool) -> None:
    marks = [10, 100] if quick else [10, 100, 300]
    try:
        theirs = await asyncio.to_thread(langgraph_steps, root / "langgraph.sqlite", marks)
    except ImportError:
        print("\n(langgraph comparison skipped: pip install -e '.[bench]')")
        return
    ours = await event_log_steps(backends, marks)
    print("\nper agent step: LangGraph SqliteSaver (full state per checkpoint) vs the sqlite session log (3 events);"
          "\n  both SQLite in WAL mode with synchronous=FULL; time per step: median of the last 10 steps")
    print(f"  {'steps':>6} {'langgraph ms':>13} {'log ms':>8} {'ratio':>6} {'langgraph bytes':>16} {'log bytes':>10} {'ratio':>6}")
    for step in marks:
        (lg_ms, lg_bytes), (log_ms, log_bytes) = theirs[step], ours[step]
        print(f"  {step:>6} {lg_ms:>13.3f} {log_ms:>8.3f} {lg_ms / log_ms:>5.1f}x {lg_bytes:>16,} {log_bytes:>10,} {lg_bytes / log_bytes:>5.1f}x")
