"""The API's memory tool (`memory_20250818`) beside a window over the latest turns: the model keeps files under
/memories with the tool's commands (view, create, str_replace, insert, delete, rename), and reads them back
itself: nothing is shown to it unasked.

The tool is client-executed: the harness answers every command from the log (the successful commands before it,
replayed in order, are the files), so the files survive a crash, a replay or a fork with the session, and nothing
lives in a sandbox. Answers and errors are worded as the SDK's own local implementation words them
(anthropic.lib.tools.BetaLocalFilesystemMemoryTool); commands are anthropic.types.beta's
BetaMemoryTool20250818Command. The request offers the tool as the API defines it, `{"type": "memory_20250818",
"name": "memory"}` (`shape`). Guide: https://platform.claude.com/docs/en/agents-and-tools/tool-use/memory-tool
"""
from __future__ import annotations

import dataclasses
import posixpath
from typing import Any, Sequence

from harnesses.base import ModelRequest
from harnesses.contexts.vocabulary import MEMORY_TOOL
from harnesses.contexts.window import WindowContext
from sandboxes.base import ToolResult
from sandboxes.tools import ToolSpec
from stores import events as logged
from stores.base import Event

ROOT = "/memories"
API_TOOL = {"type": "memory_20250818", "name": MEMORY_TOOL}
WIDTH = 6  # of a line number, as the SDK's view shows it (len(str(999_999)))
FIELDS = {"view": ("path",), "create": ("path", "file_text"), "str_replace": ("path", "old_str", "new_str"),
          "insert": ("path", "insert_line", "insert_text"), "delete": ("path",), "rename": ("old_path", "new_path")}
# what the model is told when the request did not go through `shape` (a backend that sends custom tools only)
SPEC = ToolSpec(MEMORY_TOOL, "Your memory directory, /memories: view, create, str_replace, insert, delete, rename.",
                {"type": "object", "properties": {"command": {"type": "string", "enum": list(FIELDS)}}, "required": ["command"]},
                idempotent=False)


class MemoryCommandError(Exception):
    """A command the tool refuses: its message is the tool's answer."""


class MemoryToolContext(WindowContext):
    name = "memory_tool"
    tools = (SPEC,)

    def __init__(self, turns: int = 6, max_chars: int = 100_000):
        super().__init__(turns)
        if max_chars < 1:
            raise ValueError(f"context.max_chars must be at least 1, got {max_chars}")
        self.max_chars = max_chars

    def shape(self, request: ModelRequest) -> ModelRequest:
        """The memory tool as the API defines it, in place of its stand-in definition."""
        tools = [API_TOOL if t.get("name") == MEMORY_TOOL else t for t in request.tools]
        return dataclasses.replace(request, tools=tools)

    async def run_tool(self, name: str, input: Any, events: Sequence[Event]) -> ToolResult:
        files = memory_files(events)
        try:
            output, after = run(files, input)
        except MemoryCommandError as exc:
            return ToolResult(str(exc), True)
        size = sum(map(len, after.values()))
        if size > self.max_chars:
            return ToolResult(f"{ROOT} would hold {size} characters; it holds at most {self.max_chars}", True)
        return ToolResult(output, False)


def memory_files(events: Sequence[Event]) -> dict[str, str]:
    """The files under /memories as the successful memory commands of the log left them, by path."""
    ok = {r.tool_use_id for r in logged.ToolResult.all_in(events) if not r.is_error}
    files: dict[str, str] = {}
    for call in logged.ToolCall.all_in(events):
        if call.name == MEMORY_TOOL and call.tool_use_id in ok:
            try:
                files = run(files, call.input)[1]
            except MemoryCommandError:
                continue  # a limit refused it after the command itself succeeded
    return files


def run(files: dict[str, str], command: Any) -> tuple[str, dict[str, str]]:
    """One command's answer and the files after it; MemoryCommandError says why the tool refuses it."""
    kind = command.get("command") if isinstance(command, dict) else None
    if kind not in FIELDS:
        raise MemoryCommandError(f"Unknown command: {kind!r}; valid: {', '.join(FIELDS)}")
    missing = [f for f in FIELDS[kind] if f not in command]
    if missing:
        raise MemoryCommandError(f"{kind}: missing {', '.join(missing)}")
    paths = {f: _path(command[f]) for f in ("path", "old_path", "new_path") if f in FIELDS[kind]}
    return _COMMANDS[kind](dict(files), command, **paths)


def _path(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith(ROOT):
        raise MemoryCommandError(f"Path must start with /memories, got: {path}")
    normal = posixpath.normpath(path)
    if normal != ROOT and not normal.startswith(ROOT + "/"):
        raise MemoryCommandError(f"Path {path} would escape /memories directory")
    return normal


def _is_dir(files: dict[str, str], path: str) -> bool:
    return path == ROOT or any(f.startswith(path + "/") for f in files)


def _view(files: dict[str, str], command: dict[str, Any], path: str) -> tuple[str, dict[str, str]]:
    if _is_dir(files, path):
        entries: set[str] = set()  # up to 2 levels deep: files, and the directories they are in
        for inside in (f[len(path) + 1:] for f in files if f.startswith(path + "/")):
            parts = inside.split("/")
            entries |= {parts[0] + "/"} if len(parts) > 1 else set()
            entries |= {inside} if len(parts) <= 2 else set()
        lines = [f"{len(files.get(f'{path}/{entry}', ''))}B\t{path}/{entry}" for entry in sorted(entries)]
        header = f"Here're the files and directories up to 2 levels deep in {command['path']}, excluding hidden items:"
        return "\n".join([header, f"0B\t{command['path']}", *lines]), files
    text = _file(files, path, command["path"])
    lines = text.split("\n")
    start, end = (command.get("view_range") or [1, -1])[:2]
    chosen = lines[max(1, start) - 1:len(lines) if end == -1 else end]
    numbered = [f"{str(i + max(1, start)).rjust(WIDTH)}\t{line}" for i, line in enumerate(chosen)]
    return "\n".join([f"Here's the content of {command['path']} with line numbers:", *numbered]), files


def _create(files: dict[str, str], command: dict[str, Any], path: str) -> tuple[str, dict[str, str]]:
    if path in files or _is_dir(files, path):
        raise MemoryCommandError(f"File {command['path']} already exists")
    files[path] = str(command["file_text"])
    return f"File created successfully at: {command['path']}", files


def _str_replace(files: dict[str, str], command: dict[str, Any], path: str) -> tuple[str, dict[str, str]]:
    text, old = _file(files, path, command["path"]), str(command["old_str"])
    found = text.count(old)
    if found == 0:
        raise MemoryCommandError(f"No replacement was performed, old_str `{old}` did not appear verbatim in {command['path']}.")
    if found > 1:
        at = [text[:i].count("\n") + 1 for i in range(len(text)) if text.startswith(old, i)]
        raise MemoryCommandError(f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines: "
                           f"{', '.join(map(str, at))}. Please ensure it is unique")
    files[path] = text.replace(old, str(command["new_str"]))
    return "The memory file has been edited.", files


def _insert(files: dict[str, str], command: dict[str, Any], path: str) -> tuple[str, dict[str, str]]:
    lines = _file(files, path, command["path"]).splitlines()
    at = command["insert_line"]
    if not isinstance(at, int) or not 0 <= at <= len(lines):
        raise MemoryCommandError(f"Invalid `insert_line` parameter: {at}. It should be within the range [0, {len(lines)}].")
    lines.insert(at, str(command["insert_text"]).rstrip("\n"))
    files[path] = "\n".join(lines) + "\n"
    return f"The file {command['path']} has been edited.", files


def _delete(files: dict[str, str], command: dict[str, Any], path: str) -> tuple[str, dict[str, str]]:
    if path == ROOT:
        raise MemoryCommandError("Cannot delete the /memories directory itself")
    gone = [f for f in files if f == path or f.startswith(path + "/")]
    if not gone:
        raise MemoryCommandError(f"The path {command['path']} does not exist")
    for f in gone:
        del files[f]
    return f"Successfully deleted {command['path']}", files


def _rename(files: dict[str, str], command: dict[str, Any], old_path: str, new_path: str) -> tuple[str, dict[str, str]]:
    if old_path == ROOT:
        raise MemoryCommandError("Cannot rename the /memories directory itself")
    if new_path in files or _is_dir(files, new_path):
        raise MemoryCommandError(f"The destination {command['new_path']} already exists")
    moved = {f: new_path + f[len(old_path):] for f in files if f == old_path or f.startswith(old_path + "/")}
    if not moved:
        raise MemoryCommandError(f"The path {command['old_path']} does not exist")
    for old, new in moved.items():
        files[new] = files.pop(old)
    return f"Successfully renamed {command['old_path']} to {command['new_path']}", files


def _file(files: dict[str, str], path: str, shown: str) -> str:
    if path not in files:
        raise MemoryCommandError(f"The path {shown} does not exist. Please provide a valid path.")
    return files[path]


_COMMANDS = {"view": _view, "create": _create, "str_replace": _str_replace, "insert": _insert, "delete": _delete,
             "rename": _rename}
