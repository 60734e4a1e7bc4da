"""Worker processes under supervision: a dead worker is restarted in its slot, at once.

For fault experiments the supervisor can also SIGKILL a random live worker; every kill, restart and
readiness is recorded with its wall-clock time, so recovery can be measured against the session logs.

With `preload`, workers are forked from a fork server that imported those modules once
(experiments/workers/fork_server.py). Workers end with the supervisor's process, SIGKILL included.
"""
from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from experiments.workers.fork_server import ForkServer
from processes.children import dies_with_this_process

CANNOT_GO_ON = 3  # a worker's exit code: what stops it would stop its successor too (a damaged store, say)


@dataclass
class Slot:
    name: str
    process: asyncio.subprocess.Process | None = None
    ready_at: float | None = None  # when its current process said it was ready
    starts: list[float] = field(default_factory=list)
    done: bool = False  # its worker exited on its own: nothing left to do


@dataclass(frozen=True)
class Kill:
    slot: str
    pid: int
    at: float
    by_supervisor: bool = True  # False: the worker SIGKILLed itself (a crash point), seen when it died


class WorkerFailed(RuntimeError):
    """A worker keeps dying before it is ready, or says it cannot go on: restarting it would not help."""


class Supervisor:
    def __init__(self, command: Callable[[str, int], list[str]], slots: int, log_dir: Path, preload: Sequence[str] = ()):
        # command(slot, incarnation): the slot's n-th process gets n (0 first), to seed its fault streams with
        self.command, self.log_dir = command, log_dir  # each slot's stderr goes to log_dir/<slot>.log
        self.slots = {f"w{i}": Slot(f"w{i}") for i in range(slots)}
        self.kills: list[Kill] = []
        self.readies: list[tuple[str, float]] = []  # (slot, time) for every process that became ready
        self._watchers: list[asyncio.Task] = []
        self.fork_server = ForkServer(preload, log_dir / "fork-server.log") if preload else None

    async def start(self) -> None:
        if self.fork_server is not None:
            await self.fork_server.start()
        self._watchers = [asyncio.create_task(self._keep_alive(slot)) for slot in self.slots.values()]

    async def wait(self, timeout: float) -> None:
        """Until every worker has exited on its own (the store has no active session left)."""
        await asyncio.wait_for(asyncio.gather(*self._watchers), timeout)

    def kill_one(self, rng: random.Random, min_ready_s: float) -> Kill | None:
        """SIGKILL a random worker that has been ready for at least `min_ready_s`."""
        now = time.time()
        ready = [s for s in self.slots.values() if s.process and s.process.returncode is None
                 and s.ready_at is not None and now - s.ready_at >= min_ready_s]
        if not ready:
            return None
        slot = rng.choice(ready)
        slot.process.kill()
        kill = Kill(slot.name, slot.process.pid, now)
        self.kills.append(kill)
        return kill

    async def stop(self) -> None:
        """Kill every worker and wait until each is gone (its watcher may have been cancelled: a Ctrl-C)."""
        for slot in self.slots.values():
            slot.done = True
            if slot.process and slot.process.returncode is None:
                slot.process.kill()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await asyncio.gather(*(slot.process.wait() for slot in self.slots.values() if slot.process), return_exceptions=True)
        if self.fork_server is not None:
            await self.fork_server.stop()

    async def _spawn(self, command: list[str], log: IO[bytes]) -> Any:
        if self.fork_server is not None:
            forked = await self.fork_server.spawn(command, log)
            if forked is not None:
                return forked
        return await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                    stderr=log, preexec_fn=dies_with_this_process(signal.SIGTERM))

    async def _keep_alive(self, slot: Slot) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        failed_starts = 0
        while not slot.done:
            slot.ready_at, incarnation = None, len(slot.starts)
            slot.starts.append(time.time())
            with open(self.log_dir / f"{slot.name}.log", "ab") as log:
                slot.process = await self._spawn(self.command(slot.name, incarnation), log)
            if slot.done:  # stopped while this one started
                slot.process.kill()
            async for line in slot.process.stdout:
                if line.startswith(b"worker ") and b" ready " in line:
                    slot.ready_at = time.time()
                    self.readies.append((slot.name, slot.ready_at))
            code = await slot.process.wait()
            slot.done = slot.done or code == 0  # exited by itself: idle; killed: restart, unless stopped
            if code == -signal.SIGKILL and not any(k.pid == slot.process.pid for k in self.kills):
                self.kills.append(Kill(slot.name, slot.process.pid, time.time(), by_supervisor=False))
            failed_starts = failed_starts + 1 if slot.ready_at is None and not slot.done else 0
            if failed_starts >= 3 or code == CANNOT_GO_ON:
                tail = (self.log_dir / f"{slot.name}.log").read_text(errors="replace")[-1500:]
                said = "said it cannot go on" if code == CANNOT_GO_ON else f"died {failed_starts} times before it was ready"
                raise WorkerFailed(f"worker {slot.name} {said} (exit {code}):\n{tail}")


