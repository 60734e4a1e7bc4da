"""A fork server for workers: a process that imported what workers import, once, and forks each new worker.

A worker's start is mostly imports (the anthropic SDK alone takes 1.2 s); a fault run restarts workers
again and again, and each restart is timed as recovery. The server imports those modules and does nothing
else: no thread, no event loop, no connection, so a fork of it is safe. Each worker is still a process of
its own, started from its command (`python -m module ARGS`) and killed for real; only the imports are not
repeated. A command of another form, or a server that cannot fork safely, gets None: the caller starts that
worker as a new program.

The supervisor's side (`ForkServer`) sends requests over a socket, with the new worker's stdout and stderr;
the server (`serve_forks`, run as `python -m experiments.workers.fork_server FD MODULE...`) answers on its stdout, one
JSON line each: the worker's pid (or null), then, when it ends, how it exited (negative: killed by that signal).
The server ends with the supervisor's process, and its workers with it (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any, Sequence

from processes.children import die_with_parent, dies_with_this_process


class ForkServerLost(RuntimeError):
    """The fork server died while a worker it forked ran: that worker can no longer be supervised."""


class Forked:
    """A worker forked by the fork server: what a supervisor uses of an asyncio.subprocess.Process."""

    def __init__(self, pid: int):
        self.pid, self._exited = pid, asyncio.get_running_loop().create_future()
        self.stdout = asyncio.StreamReader()  # fed by the pipe spawn() connects
        try:
            self._pidfd: int | None = os.pidfd_open(pid)  # a kill reaches this process even once its pid is reused
        except ProcessLookupError:  # gone already
            self._pidfd = None
        else:
            self._exited.add_done_callback(lambda _: os.close(self._pidfd))

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() and not self._exited.exception() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if not self._exited.done() and self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:  # exited, and its exit not reported yet
                pass


class ForkServer:
    def __init__(self, preload: Sequence[str], log_path: Path):
        self.preload, self.log_path = list(preload), log_path
        self.process: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._forking: deque[asyncio.Future] = deque()  # spawn requests sent, answered in order
        self._running: dict[int, Forked] = {}  # by pid: the workers forked whose exit the server has not told yet
        self._reading: asyncio.Task | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs, open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "experiments.workers.fork_server", str(theirs.fileno()), *self.preload,
                pass_fds=[theirs.fileno()], stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
                preexec_fn=dies_with_this_process(signal.SIGTERM))
        self._reading = asyncio.create_task(self._read_answers())

    async def spawn(self, command: list[str], stderr: IO[bytes]) -> Forked | None:
        """`command` forked from the server; None if it cannot be (not `python -m`, or the server cannot fork)."""
        if command[:2] != [sys.executable, "-m"] or len(command) < 3 or self._reading is None or self._reading.done():
            return None
        loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        forked = loop.create_future()
        try:
            socket.send_fds(self._control, [json.dumps(command).encode()], [write_end, stderr.fileno()])
            self._forking.append(forked)
        except OSError:  # the server is gone
            os.close(read_end)
            return None
        finally:
            os.close(write_end)
        worker = await forked
        if worker is None:
            os.close(read_end)
            return None
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(worker.stdout), open(read_end, "rb", buffering=0))
        return worker

    async def stop(self) -> None:
        if self._control is not None:
            self._control.close()  # the server exits when it reads the end of its requests
        if self.process is not None:
            await self.process.wait()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)

    async def _read_answers(self) -> None:
        async for line in self.process.stdout:
            answer = json.loads(line)
            if "exited" in answer:
                if (worker := self._running.pop(answer["exited"], None)) is not None:
                    worker._exited.set_result(answer["code"])
            else:
                self._forked(self._forking.popleft(), answer.get("pid"))
        self._lost(await self.process.wait())

    def _forked(self, request: asyncio.Future, pid: int | None) -> None:
        """Answer a spawn request with its worker (its pidfd opened as soon as its pid is known), or None."""
        worker = None
        if pid is not None:
            worker = self._running[pid] = Forked(pid)  # told before its exit: the server answers in order
        if not request.done():
            request.set_result(worker)
        elif worker is not None:  # its requester was cancelled (a Ctrl-C) while it forked: nobody would supervise it
            worker.kill()

    def _lost(self, code: int) -> None:
        """The server is gone: what was not forked is started as a program; a worker it forked and did not see
        exit cannot be supervised any more (no one can tell how it ends), so it is killed and fails its slot."""
        while self._forking:
            self._forked(self._forking.popleft(), None)
        tail = self.log_path.read_text(errors="replace")[-1500:]
        for worker in self._running.values():
            worker.kill()
            worker._exited.set_exception(
                ForkServerLost(f"the fork server died (exit {code}) while worker pid {worker.pid} ran:\n{tail}"))
        self._running.clear()


# -- the server: a process of its own -------------------------------------------------------------------


def serve_forks(control: socket.socket, preload: Sequence[str]) -> list[str] | None:
    """Import `preload`, then fork a worker per request until the supervisor closes its end (None); in a
    forked worker, return its command, with its stdout and stderr in place."""
    unsafe = _preload(preload)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the run's to handle: it closes this server's socket
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        for ready in select.select([control, *children], [], [])[0]:
            if ready is not control:
                pid = children.pop(ready)
                os.close(ready)
                _answer(exited=pid, code=os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
                continue
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 2)
            if not message:
                return None
            pid = _fork(fds, unsafe)
            if pid == 0:
                control.close()
                for pidfd in children:
                    os.close(pidfd)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                return json.loads(message)
            if pid is not None:
                children[os.pidfd_open(pid)] = pid


def _preload(modules: Sequence[str]) -> str | None:
    """Import what workers need; why forking would be unsafe now, if it would."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the worker meets it again and says so where it is looked for
            print(f"fork server: cannot preload {name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    if threading.active_count() > 1:  # a fork copies one thread: locks held by the others stay held
        return f"{threading.active_count()} threads run after the preload; workers start as programs"
    return None


def _fork(fds: list[int], unsafe: str | None) -> int | None:
    """0 in the child (its stdout and stderr: `fds`), the child's pid in the server, None if there is no child."""
    pid, server = None, os.getpid()
    if unsafe is None and len(fds) == 2:
        try:
            pid = os.fork()
        except OSError as exc:
            unsafe = f"cannot fork: {exc}"
    if pid == 0:
        die_with_parent(server, signal.SIGTERM)  # a worker ends as on `kill PID`: it closes its parts
        for target, fd in zip((1, 2), fds):
            os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    if pid != 0:
        if unsafe is not None:
            print(f"fork server: {unsafe}", file=sys.stderr, flush=True)
        _answer(pid=pid)
    return pid


def _answer(**answer: Any) -> None:
    print(json.dumps(answer), flush=True)


def _become(command: list[str]) -> None:
    """Run `python -m MODULE ARGS` in this process, as that command would."""
    import runpy

    sys.argv = [command[0], *command[3:]]
    runpy.run_module(command[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":  # python -m experiments.workers.fork_server FD [MODULE ...]
    forked = serve_forks(socket.socket(fileno=int(sys.argv[1])), sys.argv[2:])
    if forked is not None:
        _become(forked)
