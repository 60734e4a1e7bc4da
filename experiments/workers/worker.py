"""`harnesslab worker`: drive unfinished sessions of a shared store until none is left.

A session belongs to the worker slot named in its last harness.woke. A worker wakes the active
sessions that belong to no one or to its own slot: a restarted worker (same slot, new process) so
takes over what its predecessor was driving at once. A session untouched for `stale_s` is anyone's
(its slot may never come back). The store's `expect` check makes the loser of any race back off.

A session a wake cannot end (its log cannot be read, the wake raised, or it left the session active without
writing anything) is logged once and left alone: one bad log never keeps a worker busy.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from experiments.faults.acks import AckedStore
from experiments.faults.failpoints import Failpoints
from experiments.faults.kinds import mixed_seed
from experiments.run.load import startup_frozen
from experiments.workers.supervisor import CANNOT_GO_ON
from stores.base import Event, StoreError, StoreUnavailable
from stores.events import HarnessWoke, UserMessage

log = logging.getLogger(__name__)


def owner(events: list[Event]) -> str | None:
    """The worker slot that last woke on this session."""
    woke = HarnessWoke.all_in(events)
    return woke[-1].worker if woke else None


class CannotGoOn(RuntimeError):
    """The store cannot list its active sessions: no worker could go on, a restarted one neither."""


class Worker:
    max_pause_s = 1.0  # the longest wait between polls of an unavailable store
    window = 256  # active sessions looked at per poll, oldest first (past those skipped): a backlog costs nothing

    def __init__(self, store: Any, harness: Any, slot: str, concurrency: int = 8, poll_s: float = 0.05, stale_s: float = 30.0,
                 ended: Callable[[str], Awaitable[None]] | None = None):
        self.store, self.harness, self.slot = store, harness, slot
        self.ended = ended  # told of each session this worker ended (experiments.workers.collect.Checker checks it)
        self.concurrency, self.poll_s, self.stale_s = concurrency, poll_s, stale_s
        self.running: dict[str, asyncio.Task] = {}
        self.skipped: set[str] = set()  # sessions this worker cannot end: it no longer takes them
        self.woken = self.conflicts = self.interrupted = 0

    async def run(self, exit_when_idle: bool = True) -> None:
        pause = self.poll_s
        while True:
            try:
                idle = not await self._take_sessions()
                pause = self.poll_s
            except StoreUnavailable as exc:  # a store restart: wait it out, backing off
                log.warning("worker %s: %s; retrying in %.2f s", self.slot, exc, pause)
                idle, pause = False, min(pause * 2, self.max_pause_s)
            except StoreError as exc:  # a damaged row, say: it stays damaged
                raise CannotGoOn(f"worker {self.slot}: the store cannot list its active sessions: {exc}") from exc
            if idle and not self.running and exit_when_idle:
                return
            await asyncio.sleep(pause)

    async def _take_sessions(self) -> list:
        """Start driving the active sessions that are this worker's to take, among the oldest `window`
        (in-flight ones come first, so a restarted worker finds its own at once); returns those."""
        listed = await self.store.sessions(status="active", limit=self.window + len(self.skipped))
        active = [info for info in listed if info.id not in self.skipped]
        for info in active:
            if len(self.running) >= self.concurrency:
                break
            if info.id not in self.running and await self._mine(info):
                self.running[info.id] = asyncio.create_task(self._drive(info))
        return active

    async def _mine(self, info: Any) -> bool:
        """Left untouched for `stale_s` (its slot may be gone for good); or unowned or this slot's, and holding a user
        message (one created a moment ago may be about to get its first)."""
        if time.time() - info.updated > self.stale_s:
            return True
        try:
            events = await self.store.events(info.id)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            self._skip(info.id, f"its log cannot be read: {exc}")
            return False
        return owner(events) in (None, self.slot) and any(e.type == UserMessage.TYPE for e in events)

    async def _drive(self, info: Any) -> None:
        try:
            self.woken += 1
            outcome = await self.harness.wake(info.id)
            self.conflicts += outcome.status == "conflict"
            if self.ended is not None and outcome.status in ("completed", "failed"):
                await self.ended(info.id)
            elif outcome.status not in ("completed", "failed") and (await self.store.session(info.id)).length == info.length:
                self._skip(info.id, f"a wake left it {outcome.status} without writing anything ({outcome.reason})")
        except StoreUnavailable as exc:  # the session stays active and this slot's: the next poll wakes it again
            self.interrupted += 1
            log.warning("worker %s: session %s interrupted: %s", self.slot, info.id, exc)
        except Exception:
            log.exception("worker %s: cannot end session %s, skipping it: driving it raised", self.slot, info.id)
            self.skipped.add(info.id)
        finally:
            del self.running[info.id]

    def _skip(self, session_id: str, why: str) -> None:
        log.error("worker %s: cannot end session %s, skipping it: %s", self.slot, session_id, why)
        self.skipped.add(session_id)


async def serve(cfg: Any, slot: str, exit_when_idle: bool, acks: Path | None = None, failpoints: Failpoints | None = None,
                check: bool = False, fault_seed: int | None = None) -> int:
    """Build the configured parts and work until the store has no active session (or forever).

    `acks`: record every acknowledged append there; `failpoints`: faults this worker injects into itself;
    `check`: check each session this worker ends, in its sandbox, and log the verdict (task.checked);
    `fault_seed`: this process's own, mixed into the seed of its model's fault stream."""
    from contextlib import AsyncExitStack

    from experiments.run.parts import build_parts, start_parts

    if fault_seed is not None:
        seed_model_faults(cfg, fault_seed)

    def wrap(name: str, part: Any) -> Any:
        if name == "store" and acks is not None:
            part = AckedStore(part, acks)
        return failpoints.wrap(name, part) if failpoints is not None else part

    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack, harness_options={"worker": slot}, wrap=wrap)
        await _start(parts, start_parts)
        print(f"worker {slot} ready {time.time():.3f}", flush=True)
        checker = None
        if check:
            from hydra.utils import instantiate

            from experiments.workers.collect import Checker

            checker = Checker(parts.store, parts.sandboxes, instantiate(cfg.tasks), slot)
        worker = Worker(parts.store, parts.harness, slot, cfg.run.concurrency, ended=checker)
        with startup_frozen():
            try:
                await worker.run(exit_when_idle)
            except CannotGoOn as exc:
                print(exc, file=sys.stderr, flush=True)
                return CANNOT_GO_ON
        print(f"worker {slot} done: woke {worker.woken} session(s), {worker.conflicts} conflict(s), "
              f"{worker.interrupted} interrupted by the store", file=sys.stderr)
    return 0


def seed_model_faults(cfg: Any, fault_seed: int) -> None:
    """Mix `fault_seed` into the seed of the model's fault stream (the emulator's), if it has one: each
    process its own stream, so a restarted worker does not replay its predecessor's first draws."""
    faults = cfg.model.get("faults")
    if faults is not None:
        faults.seed = mixed_seed(faults.get("seed", 0), fault_seed)


async def _start(parts: Any, start_parts: Any, give_up_s: float = 60.0) -> None:
    """Start the parts, waiting out a store that is restarting (a worker may start in the middle of it)."""
    pause, deadline = 0.1, time.monotonic() + give_up_s
    while True:
        try:
            return await start_parts(parts)
        except StoreUnavailable as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("worker: %s; retrying in %.1f s", exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, Worker.max_pause_s)
