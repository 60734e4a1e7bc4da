"""The tools over a workspace directory. Standard library only: the Docker executor runs this very code."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Callable, Mapping

from sandboxes.process import CappedOutput, run_command
from sandboxes.tools import ToolError

MAX_LISTED = 2000


async def run_tool(
    root: Path, name: str, input: dict, *, argv: Callable[[str], list[str]], env: Mapping[str, str],
    timeout_s: float, output_limit: int,
) -> tuple[str, bool]:
    """Run a validated tool call on the workspace at `root`: (output, is_error). `argv(command)` is how
    bash runs (directly, under bwrap, as another user, ...); `timeout_s` is already the effective timeout."""
    if name == "bash":
        done = await run_command(argv(input["command"]), cwd=str(root), env=env, timeout=timeout_s,
                                 output_limit=output_limit)
        return done.report(timeout_s)
    return file_tool(root, name, input, output_limit), False


def file_tool(root: Path, name: str, input: dict, output_limit: int) -> str:
    """A file tool's output (ToolError if it fails)."""
    if name == "read_file":
        return read_file(root, input["path"], output_limit, input.get("offset"), input.get("limit"))
    if name == "write_file":
        return write_file(root, input["path"], input["content"])
    if name == "edit_file":
        return edit_file(root, input["path"], input["old_string"], input["new_string"])
    if name == "list_files":
        return list_files(root, input.get("path", "."), input.get("recursive", True))
    raise ToolError(f"unknown tool {name!r}")


def resolve(root: Path, path: str) -> Path:
    """`path` inside the workspace `root` (symlinks followed), or ToolError if it escapes."""
    if "\x00" in path:
        raise ToolError(f"path {path!r} contains a NUL byte")
    candidate = Path(os.path.realpath(root / path))
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"path {path!r} is outside the workspace; use a path relative to the workspace root")
    return candidate


def read_file(root: Path, path: str, output_limit: int, offset: int | None = None, limit: int | None = None) -> str:
    target = _existing_file(root, path)
    output = CappedOutput(output_limit)
    with open(target, "rb") as f:
        if offset is None and limit is None:
            while chunk := f.read(65536):
                output.feed(chunk)
        else:
            start = (offset or 1) - 1
            for line in itertools.islice(f, start, None if limit is None else start + limit):
                output.feed(line)
    return output.text()


def write_file(root: Path, path: str, content: str) -> str:
    target = resolve(root, path)
    if target.is_dir():
        raise ToolError(f"{path} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8", errors="surrogateescape")
    target.write_bytes(data)
    return f"wrote {len(data)} bytes to {path}"


def edit_file(root: Path, path: str, old_string: str, new_string: str) -> str:
    target = _existing_file(root, path)
    try:
        text = target.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{path} is not UTF-8 text; edit it with bash instead") from None
    count = text.count(old_string)
    if count == 0:
        raise ToolError(f"old_string not found in {path}; read the file and copy the exact text")
    if count > 1:
        raise ToolError(f"old_string occurs {count} times in {path}; include more surrounding text so it is unique")
    target.write_text(text.replace(old_string, new_string, 1), encoding="utf-8")
    return f"edited {path}"


def list_files(root: Path, path: str = ".", recursive: bool = True) -> str:
    base = resolve(root, path)
    if not base.is_dir():
        raise ToolError(f"{path} is not a directory" if base.exists() else f"{path}: no such directory")
    entries = base.rglob("*") if recursive else base.iterdir()
    names = sorted(
        str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in itertools.islice(entries, MAX_LISTED + 1)
    )
    if len(names) > MAX_LISTED:
        names = names[:MAX_LISTED] + [f"[... more than {MAX_LISTED} entries; list a subdirectory ...]"]
    return "\n".join(names) if names else "(empty)"


def _existing_file(root: Path, path: str) -> Path:
    target = resolve(root, path)
    if target.is_dir():
        raise ToolError(f"{path} is a directory; use list_files")
    if not target.exists():
        raise ToolError(f"{path}: no such file")
    return target
