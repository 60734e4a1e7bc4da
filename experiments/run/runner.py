"""Run a task suite through the configured parts and record what happened."""
from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Sequence

from experiments.run.load import LoadMeter
from experiments.tasks.base import CheckContext, Task, Verdict
from harnesses.base import Harness, Outcome
from sandboxes.base import Sandbox, SandboxError, SandboxProvider, Setup
from stores.base import SessionStore
from stores.events import UserMessage


ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # `kill PID`, a closed terminal: handled as a Ctrl-C


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    suite: str
    instance: int
    task: str
    outcome: Outcome
    verdict: Verdict
    duration_ms: float


async def run_task(
    store: SessionStore, harness: Harness, sandboxes: SandboxProvider, suite: str, instance: int, task: Task,
    credentials: Any = None,
) -> SessionRecord:
    """Create the session (and its credential grant), wake a harness on it, then check the result in its sandbox."""
    meta = task.meta(suite, instance)
    if meta.get("credentials") and credentials is None:
        raise ValueError(f"task {task.name} needs credentials {meta['credentials']}: run it with credentials=proxy")
    session_id = await store.create_session(meta)
    if credentials is not None:
        await credentials.grant(session_id, meta)
    await store.append(session_id, [UserMessage(task.prompt).event()], expect=1)
    started = time.perf_counter()
    outcome = await harness.wake(session_id)
    duration_ms = (time.perf_counter() - started) * 1000
    verdict = await check(task, outcome, sandboxes, Setup.from_meta(meta["setup"]))
    if credentials is not None:
        await credentials.revoke(session_id)
    return SessionRecord(session_id, suite, instance, task.name, outcome, verdict, duration_ms)


async def check(task: Task, outcome: Outcome, sandboxes: SandboxProvider, setup: Setup) -> Verdict:
    """Run the task's check; a session that never needed hands is checked in a fresh workspace."""
    opened: list[Sandbox] = []

    async def sandbox() -> Sandbox:
        if not opened:
            if outcome.sandbox_id is not None:
                opened.append(await sandboxes.attach(outcome.sandbox_id))
            else:
                opened.append(await sandboxes.provision())
                await opened[0].prepare(setup)
        return opened[0]

    try:
        verdict = await task.check(CheckContext(outcome.final_text, sandbox))
    except SandboxError as exc:
        verdict = Verdict(False, f"check could not run: {type(exc).__name__}: {exc}")
    finally:
        for box in opened:
            await box.close()
    if outcome.status != "completed":
        return Verdict(False, f"session {outcome.status}: {outcome.reason}; {verdict.detail}")
    return verdict


async def run_suite(
    store: SessionStore,
    harness: Harness,
    sandboxes: SandboxProvider,
    tasks: Sequence[tuple[str, int, Task]],
    concurrency: int,
    on_done: Callable[[SessionRecord], Any] = lambda record: None,
    credentials: Any = None,
    arrivals_per_s: float | None = None,
    seed: int = 0,
    meter: LoadMeter | None = None,
) -> list[SessionRecord]:
    """Run every task, at most `concurrency` at once. `arrivals_per_s`: sessions arrive as a Poisson process
    at that rate (seeded), an open-loop load like users starting sessions; None: all at once."""
    if concurrency < 1:
        raise ValueError(f"run.concurrency must be at least 1, got {concurrency}")
    if arrivals_per_s is not None and arrivals_per_s <= 0:
        raise ValueError(f"run.arrivals_per_s must be positive (or null: all at once), got {arrivals_per_s}")
    gate = asyncio.Semaphore(concurrency)
    arrivals = poisson_arrivals(len(tasks), arrivals_per_s, seed)
    start, meter = time.perf_counter(), meter or LoadMeter()

    async def one(arrival_s: float, suite: str, instance: int, task: Task) -> SessionRecord:
        await asyncio.sleep(max(0.0, start + arrival_s - time.perf_counter()))
        async with gate:
            meter.session_started()
            try:
                record = await run_task(store, harness, sandboxes, suite, instance, task, credentials)
            finally:
                meter.session_ended()
        on_done(record)
        return record

    return list(await asyncio.gather(*(one(at, *entry) for at, entry in zip(arrivals, tasks))))


def poisson_arrivals(count: int, per_s: float | None, seed: int) -> list[float]:
    """Seconds from the start at which each of `count` sessions arrives (all at 0 without a rate)."""
    if per_s is None:
        return [0.0] * count
    rng, at, times = random.Random(seed), 0.0, []
    for _ in range(count):
        times.append(at)
        at += rng.expovariate(per_s)
    return times


def close_on_exit(stack: AsyncExitStack, part: Any) -> Any:
    """Register `part`'s async `close` (every store, provider and model declares one) with `stack`; return the part."""
    stack.push_async_callback(part.close)
    return part


def run_to_cleanup(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run(main), a SIGTERM or SIGHUP acting as a Ctrl-C: main is cancelled, so the parts it opened close
    (the run's containers and temporary folders go) before KeyboardInterrupt ends the process."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        return asyncio.run(main)
    previous = {number: signal.signal(number, _as_ctrl_c) for number in ENDING_SIGNALS}
    try:
        return asyncio.run(main)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _as_ctrl_c(number: int, frame: Any) -> None:
    handler = signal.getsignal(signal.SIGINT)  # asyncio.run's: it cancels the main task
    if not callable(handler):  # Ctrl-C is ignored (a shell's background job): end the run anyway
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)
