"""Processes of their own: the credential proxy, its test services, the model emulator.

A child gets its config (with its secrets) as one JSON document on stdin, never in argv or the
environment, which other processes can read in /proc; it answers with one JSON line on stdout once it
serves, and runs until SIGTERM. The parent stops it by its PID.
"""
from __future__ import annotations

import asyncio
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
            [sys.executable, "-m", self.module], cwd=PROJECT_ROOT, env=_ENV, start_new_session=True,
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


async def serve_app(app: Any, port: int = 0) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Serve an aiohttp application on loopback (port 0: one the OS picks); its URL, and how to stop it."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    return f"http://{LOOPBACK}:{site._server.sockets[0].getsockname()[1]}", runner.cleanup


def serve(start: Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], Callable[[], Awaitable[None]]]]]) -> None:
    """The child's main: read the config, `start` it, print what it returns, serve until SIGTERM, then clean up."""
    config = json.loads(sys.stdin.read())

    async def main() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        info, cleanup = await start(config)
        os.write(sys.stdout.fileno(), (json.dumps(info) + "\n").encode())
        try:
            await stopping.wait()
        finally:
            await cleanup()

    asyncio.run(main())
