"""Fault points inside a worker, for faults that must land at an exact point of its work.

Random kills from outside mostly land while a worker waits on the model, and a tool call is over in
milliseconds, too fast to hit from outside. So a worker started with these options acts on itself:

- `crash_at`: SIGKILL itself, with probability `crash_rate` each time it passes the point:
  `model_stream` (a model call in flight: request sent, the response not complete),
  `tool_running` (a logged tool call started in the sandbox, its result not yet logged), or
  `append` (the store committed an append, the harness has not been told);
- `sandbox_kills`: destroy the sandbox a logged tool call goes to (the container removed, or the
  workspace deleted), with probability `sandbox_kill_rate` per call, until `log` holds that many.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from sandboxes.journal import append_line

POINTS = ("model_stream", "tool_running", "append")
Call = Callable[..., Awaitable[Any]]


@dataclass
class Failpoints:
    crash_at: str | None = None
    crash_rate: float = 0.2
    sandbox_kills: int = 0
    sandbox_kill_rate: float = 0.2
    log: Path | None = None  # faults injected here are recorded in it (shared by the run's workers)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.crash_at not in (None, *POINTS):
            raise ValueError(f"crash point {self.crash_at!r}; valid: {', '.join(POINTS)}")
        for name in ("crash_rate", "sandbox_kill_rate"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.sandbox_kills and self.log is None:
            raise ValueError("sandbox kills are counted in a fault log: give one")
        self.rng = random.Random(f"failpoints:{self.seed}")  # a fault run gives each worker process a seed of its own

    def wrap(self, name: str, part: Any) -> Any:
        """Wrap the part (store, model or sandbox provider) whose work a fault point is in."""
        if name == "model" and self.crash_at == "model_stream":
            part.respond = self._crash_mid_stream(part.respond)
        elif name == "store" and self.crash_at == "append":
            part.append = self._crash_after(part.append)
        elif name == "sandbox" and (self.crash_at == "tool_running" or self.sandbox_kills):
            part.provision, part.attach = self._wrap_sandboxes(part.provision), self._wrap_sandboxes(part.attach)
        return part

    def crash(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def _crash_mid_stream(self, call: Call) -> Call:
        async def crashing(*args: Any) -> Any:
            task = asyncio.ensure_future(call(*args))
            if self.rng.random() < self.crash_rate:
                done, _ = await asyncio.wait({task}, timeout=self.rng.uniform(0.002, 0.05))
                if not done:
                    self.crash()
            return await task

        return crashing

    def _crash_in_tool(self, call: Call) -> Call:
        """After a logged call started and before its result is logged (the tool may have finished)."""
        async def crashing(name: str, input: Any, key: str | None = None) -> Any:
            task = asyncio.ensure_future(call(name, input, key))
            if key is not None and self.rng.random() < self.crash_rate:  # key: a logged call, not a new sandbox's setup
                await asyncio.sleep(0)
                self.crash()
            return await task

        return crashing

    def _crash_after(self, call: Call) -> Call:
        async def crashing(*args: Any, **kwargs: Any) -> Any:
            result = await call(*args, **kwargs)
            if self.rng.random() < self.crash_rate:
                self.crash()
            return result

        return crashing

    def _wrap_sandboxes(self, get: Call) -> Call:
        async def wrapped(*args: Any) -> Any:
            sandbox = await get(*args)
            execute = sandbox.execute
            if self.sandbox_kills:
                execute = self._kill_sandbox_under_call(sandbox, execute)
            if self.crash_at == "tool_running":
                execute = self._crash_in_tool(execute)
            sandbox.execute = execute
            return sandbox

        return wrapped

    def _kill_sandbox_under_call(self, sandbox: Any, call: Call) -> Call:
        """The sandbox dies as a logged call reaches it: after tool.call is durable, before the tool returns.

        (A local file tool is over within one step of the event loop, so "while it runs" cannot be hit
        reliably from here; destroying the hands as the call arrives can, on every backend.)"""
        async def killing(name: str, input: Any, key: str | None = None) -> Any:
            if key is not None and self.rng.random() < self.sandbox_kill_rate and self._kills_left():
                append_line(self.log, {"kind": "sandbox_kill", "target": sandbox.id, "at": time.time(),
                                       "point": "tool_call", "session_id": key.rpartition(":")[0]})
                await sandbox.close()  # the container removed, or the workspace deleted
            return await call(name, input, key)

        return killing

    def _kills_left(self) -> bool:
        done = 0
        if self.log.exists():
            done = sum(json.loads(line)["kind"] == "sandbox_kill" for line in self.log.read_text().splitlines())
        return done < self.sandbox_kills
