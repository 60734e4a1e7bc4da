"""Run a command in its own process group with a timeout and a streaming output cap."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Mapping, Sequence

# After the command exits, how long its background children may still hold the output pipe open.
_DRAIN_GRACE_S = 0.2


class CappedOutput:
    """Keeps the first and last `limit / 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int):
        self.limit = max(int(limit), 2)
        self._head_cap = self.limit - self.limit // 2
        self._tail_cap = self.limit // 2
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self._tail_cap:
                del self.tail[: len(self.tail) - self._tail_cap]

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        return f"{head}\n[... output truncated: {omitted} of {self.total} bytes omitted ...]\n{tail}"


@dataclass(frozen=True, slots=True)
class Completed:
    output: str
    exit_code: int | None  # None when the command was killed for its timeout
    timed_out: bool

    def report(self, timeout: float) -> tuple[str, bool]:
        """(text for the model, is_error)."""
        if self.timed_out:
            return f"{self.output}\n[timed out after {timeout:g}s: process group killed]", True
        if self.exit_code:
            return f"{self.output}\n[exit code {self.exit_code}]", True
        return self.output, False


async def run_command(
    argv: Sequence[str], *, cwd: str, env: Mapping[str, str], timeout: float, output_limit: int
) -> Completed:
    """Run `argv` in a new session; on timeout, and always once it returns, kill its whole group."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    output = CappedOutput(output_limit)
    reader = asyncio.create_task(_pump(proc.stdout, output))
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout)
        await asyncio.wait({reader}, timeout=_DRAIN_GRACE_S)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return Completed(output.text(), None if timed_out else proc.returncode, timed_out)


async def _pump(stream: asyncio.StreamReader, output: CappedOutput) -> None:
    while chunk := await stream.read(65536):
        output.feed(chunk)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
