"""A side-effect journal outside every sandbox: one line each time a tool call actually starts.

Written by the host just before the tool runs (an O_APPEND write of one short line is atomic, so
processes may share the file), keyed by the call's idempotency key. A key that appears twice is a
tool that ran twice, whatever the session logs say.
"""
from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, key: str, tool: str, sandbox_id: str) -> None:
        append_line(self.path, {"key": key, "tool": tool, "sandbox": sandbox_id, "pid": os.getpid(), "ts": time.time()})


def append_line(path: Path, entry: dict) -> None:
    """One JSON line, in one O_APPEND write: lines from several processes never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def starts(path: str | Path) -> collections.Counter:
    """How many times each (key, tool) started."""
    found: collections.Counter = collections.Counter()
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            entry = json.loads(line)
            found[entry["key"], entry["tool"]] += 1
    return found
