"""The tool executor that runs inside a Docker sandbox: JSON lines in on stdin, JSON lines out on stdout.

Started once per container, it runs the same tool code as the local backend (sandboxes.workspace) on
/workspace, so a tool call costs a line each way instead of a `docker exec`. Standard library only.
Request: {"id", "name", "input", "timeout", "limit"}; reply: {"id", "output", "is_error"}.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sandboxes.tools import ToolError
from sandboxes.workspace import run_tool

WORKSPACE = Path("/workspace")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(WORKSPACE), "LANG": "C.UTF-8", "TERM": "dumb"}


async def handle(request: dict) -> dict:
    try:
        output, is_error = await run_tool(
            WORKSPACE, request["name"], request["input"], argv=lambda command: ["bash", "-c", command],
            env=ENV, timeout_s=request["timeout"], output_limit=request["limit"],
        )
    except ToolError as exc:
        output, is_error = str(exc), True
    except OSError as exc:
        output, is_error = f"{request['name']} failed: {exc.strerror or exc}", True
    return {"id": request["id"], "output": output, "is_error": is_error}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    while line := await reader.readline():
        reply = await handle(json.loads(line))
        sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
