"""The tool executor that runs inside a Docker sandbox: JSON lines in on stdin, JSON lines out on stdout.

Started once per container, it runs the same tool code as the local backend (sandboxes.workspace) on
/workspace, so a tool call costs a line each way instead of a `docker exec`. Standard library only.
Request: {"id", "name", "input", "timeout", "limit"}; reply: {"id", "output", "is_error"}.

Nothing a tool call does ends the executor: any failure is that call's tool error. It is not dumpable,
so the commands, which run as the same user, cannot open its stdin or stdout through /proc and write
into the channel; after each command it kills every other process of that user (a detached one too).
Replies are ASCII JSON, so whatever bytes a tool returns, the line encodes. docker-init (PID 1) holds the same
stdout and is dumpable, so a command can write into the channel there: each reply starts on a new line, and the
host drops every line that is not the reply it waits for.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from sandboxes.process import live_processes_of
from sandboxes.tools import ToolError
from sandboxes.workspace import run_tool

WORKSPACE = Path("/workspace")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(WORKSPACE), "LANG": "C.UTF-8", "TERM": "dumb"}
_SWEEPS = 50  # at most, rounds of kill(-1) after a command until no other process of the user is alive
_PR_SET_DUMPABLE = 4


async def handle(request: dict) -> dict:
    name = request.get("name")
    try:
        output, is_error = await run_tool(
            WORKSPACE, name, request["input"], argv=lambda command: ["bash", "-c", command],
            env=ENV, timeout_s=request["timeout"], output_limit=request["limit"],
        )
    except ToolError as exc:
        output, is_error = str(exc), True
    except OSError as exc:
        output, is_error = f"{name} failed: {exc.strerror or exc}", True
    except Exception as exc:  # a bug, or a request the host never sends: this call's error, not the executor's end
        output, is_error = f"{name} failed: {type(exc).__name__}: {exc}", True
    finally:
        if name == "bash":
            await sweep()
    return {"id": request.get("id"), "output": output, "is_error": is_error}


async def sweep() -> None:
    """Kill every process of this user but the executor (and the container's init, PID 1): what a command left,
    until none is alive."""
    for _ in range(_SWEEPS):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not live_processes_of(os.getuid(), frozenset({1, os.getpid()})):
            return
        await asyncio.sleep(0.005)


def undumpable() -> None:
    """Make /proc/<executor>/fd root's, out of reach of the commands (the same user)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


async def serve() -> None:
    undumpable()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    send({"ready": True})
    while line := await reader.readline():
        try:
            request = json.loads(line)
        except ValueError as exc:
            request = exc
        if isinstance(request, dict):
            reply = await handle(request)
        else:
            reply = {"id": None, "output": f"unreadable request: {request}", "is_error": True}
        send(reply)


def send(message: dict) -> None:
    """`message` on a line of its own: docker-init holds this stream too, and bytes a command wrote there without
    a newline end on the line before, which the host drops."""
    sys.stdout.write("\n" + json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
