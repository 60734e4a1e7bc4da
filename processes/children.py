"""Processes of their own: the credential proxy, its test services, the model emulator.

A child gets its config (with its secrets) as one JSON document on stdin, never in argv or the
environment, which other processes can read in /proc; it answers with one JSON line on stdout once it
serves, and runs until SIGTERM. The parent stops it by its PID. A child also ends when its parent does, however
the parent ends (SIGKILL too): the kernel tells it (PR_SET_PDEATHSIG), so a killed run leaves no proxy holding
secrets, no service and no emulator listening.
"""
from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
PARENT_ENV = "HARNESSLAB_PARENT"  # the pid of the process a child must not outlive
_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """A child that exited or stayed silent instead of saying it serves."""


class Child:
    def __init__(self, module: str, config: dict[str, Any], ready_timeout_s: float = 30.0):
        self.module, self.config, self.ready_timeout_s = module, config, ready_timeout_s
        self.process: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> dict[str, Any]:
        """Start the child, hand it its config, and return what it says once it serves."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], cwd=PROJECT_ROOT, env={**_ENV, PARENT_ENV: str(os.getpid())},
            start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        self.process.stdin.write(json.dumps(self.config).encode())
        self.process.stdin.close()
        line = self._ready_line()
        return json.loads(line)

    def _ready_line(self) -> bytes:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if line:
                    return line
            if self.process.poll() is not None:
                break
        self.stop()
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-2000:]
        raise ChildFailed(f"{self.module} did not start within {self.ready_timeout_s:.0f} s: {tail or 'no output'}")

    def peak_rss_mb(self) -> float | None:
        """The most memory the child has held so far (VmHWM), while it runs."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (OSError, TypeError):
            return None
        return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)

    def cpu_s(self) -> float | None:
        """CPU time (user + system) the child has used so far, while it runs."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except (OSError, TypeError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@functools.cache
def _prctl() -> Callable[..., int]:
    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(parent: int, number: int) -> None:
    """Have the kernel send this process signal `number` when its parent ends, SIGKILL included; end at once if the
    parent `parent` is already gone (it died before this was set, and this process now has another parent).

    Set it after any change of uid: the kernel clears it then. It is also sent when the *thread* that started this
    process ends, its process living on: a child started from a worker thread checks os.getppid() when it comes."""
    if _prctl()(_PR_SET_PDEATHSIG, number, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


def dies_with_this_process(number: int) -> Callable[[], None]:
    """A preexec_fn for Popen: the child is sent signal `number` when this process ends (after Popen's own change of
    user, if any, which would clear it). prctl is looked up here, before the fork, so the child only calls it."""
    _prctl()
    return functools.partial(die_with_parent, os.getpid(), number)


async def serve_app(app: Any, port: int = 0) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Serve an aiohttp application on loopback (port 0: one the OS picks); its URL, and how to stop it."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    return f"http://{LOOPBACK}:{site._server.sockets[0].getsockname()[1]}", runner.cleanup


def serve(start: Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], Callable[[], Awaitable[None]]]]]) -> None:
    """The child's main: read the config, `start` it, print what it returns, serve until SIGTERM or until its parent
    ends (SIGHUP from the kernel, the parent gone), then clean up."""
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())

    def orphaned() -> bool:  # a SIGHUP with the parent still there: only the thread that started this one ended
        return os.getppid() != parent

    signal.signal(signal.SIGHUP, lambda number, frame: orphaned() and sys.exit(1))  # until the loop takes over
    die_with_parent(parent, signal.SIGHUP)
    config = json.loads(sys.stdin.read())

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: orphaned() and stopping.set())
        info, cleanup = await start(config)
        try:
            if orphaned():  # the parent ended while this one started: nobody will read the line, or stop it
                return
            os.write(sys.stdout.fileno(), (json.dumps(info) + "\n").encode())
            await stopping.wait()
        finally:
            await cleanup()

    asyncio.run(main())
