"""Run a command in its own process group with a timeout and a streaming output cap."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Mapping, Sequence

# After the command exits, how long its background children may still hold the output pipe open.
_DRAIN_GRACE_S = 0.2


class CappedOutput:
    """Keeps the first and last `limit / 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int):
        self.limit = max(int(limit), 2)
        self.head_size = self.limit - self.limit // 2
        self.tail_size = self.limit // 2
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_size - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk[-self.tail_size:]
            if len(self.tail) > self.tail_size:
                del self.tail[: len(self.tail) - self.tail_size]

    def skip(self, count: int) -> None:
        """Count `count` bytes of the middle as omitted without reading them (the head is full)."""
        self.total += count

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
    argv: Sequence[str], *, cwd: str, env: Mapping[str, str], timeout: float, output_limit: int,
) -> Completed:
    """Run `argv` in a new session; on timeout, and always once it returns, kill its whole group."""
    loop = asyncio.get_running_loop()
    output = CappedOutput(output_limit)
    transport, collector = await loop.subprocess_exec(
        lambda: _Collector(output, loop),
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        exited, _ = await asyncio.wait({collector.exited}, timeout=timeout)
        if exited:
            await asyncio.wait({collector.drained}, timeout=_DRAIN_GRACE_S)
    finally:
        group = transport.get_pid()
        _kill_group(group)
        await collector.exited  # the leader reaped: any member left was forked after the kill (a fork bomb's)
        await _clear_group(group)
        transport.close()
    return Completed(output.text(), None if not exited else transport.get_returncode(), not exited)


class _Collector(asyncio.SubprocessProtocol):
    """Feeds output to the cap; unlike Process.wait(), learns of the exit while children hold the pipe."""

    def __init__(self, output: CappedOutput, loop: asyncio.AbstractEventLoop):
        self.output = output
        self.exited, self.drained = loop.create_future(), loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.output.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        _settle(self.drained)

    def process_exited(self) -> None:
        _settle(self.exited)


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _kill_group(pgid: int) -> bool:
    """SIGKILL every member of the group; False if it has none left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _clear_group(pgid: int, rounds: int = 200) -> None:
    """Kill the group until no live member is left: members forked between two rounds die in the next.
    Zombies do not count: they wait for whoever reaps orphans (init, on its own schedule)."""
    for _ in range(rounds):
        if not _kill_group(pgid) or not _live_members(pgid):
            return
        await asyncio.sleep(0.005)


def _live_members(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def live_processes_of(uid: int, but: frozenset[int] = frozenset()) -> bool:
    """Whether a live process (a zombie is not) of real user `uid` is left, other than those in `but`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in but:
            try:
                with open(f"/proc/{entry}/status") as status:
                    fields = dict(line.split(":", 1) for line in status.read().splitlines() if ":" in line)
            except OSError:
                continue
            if int(fields.get("Uid", "-1").split()[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
                return True
    return False


def process_identity(pid: int | None = None) -> str:
    """Who a process is on this host for as long as it runs: boot id, pid and start time (a pid alone is
    reused). For labels that must tell, later and from another process, whether their maker still runs."""
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{_stat_fields(pid)[19]}"


def identity_alive(identity: str) -> bool:
    """Whether the process `identity` (process_identity's) names still runs; a zombie does not."""
    boot, _, rest = identity.partition(":")
    pid, _, started = rest.partition(":")
    if boot != _boot_id() or not pid.isdigit():
        return False
    try:
        fields = _stat_fields(int(pid))
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


def _boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as boot:
        return boot.read().strip()


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: the state first, the start time (field 22) at 19."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()
