"""The agent toolset (`agent_toolset_20260401`): bash, read, write, edit, glob and grep with the API's names and
input schemas, run by harnesslab's sandboxes.

`ToolsetProvider` wraps the configured sandbox provider: its sandboxes offer the toolset and run each call as one
call of harnesslab's own tools (sandboxes/tools.py) in the wrapped sandbox, so every backend (local, namespace,
docker, pools) serves the toolset, and the log records the calls under the API's names. What harnesslab's tools
cannot do as the toolset defines it is in docs/managed.md ("the toolset on harnesslab's hands").
"""
from __future__ import annotations

import re
import shlex
import time
from pathlib import PurePosixPath
from typing import Any, Callable, Sequence

from sandboxes.base import Fetch, ProviderOver, Sandbox, Setup, ToolResult
from sandboxes.tools import ToolError, ToolSpec, object_schema, validate_input

TOOLSET_TYPE = "agent_toolset_20260401"
_FILE = {"type": "string", "minLength": 1, "description": "Path of the file, relative to the workspace root."}
_ROOT = {"type": "string", "description": "Directory to search under; default: the workspace root."}

AGENT_TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in [
    ToolSpec("bash", "Run a shell command in the workspace. `restart` restarts the bash session.", object_schema(
        [], command={"type": "string"}, restart={"type": "boolean"},
        timeout_ms={"type": "integer", "minimum": 0, "description": "Per-call timeout; 0 or omitted: the default."}),
        idempotent=False),
    ToolSpec("read", "Read a text file; `view_range` [start_line, end_line] (1-based, inclusive; end 0 or less: to the "
             "end) selects lines.", object_schema(
        ["file_path"], file_path=_FILE,
        view_range={"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}),
        idempotent=True, read_only=True),
    ToolSpec("write", "Write (overwrite) a whole file, creating parent directories.", object_schema(
        ["file_path", "content"], file_path=_FILE, content={"type": "string"}), idempotent=True),
    ToolSpec("edit", "Replace `old_string` with `new_string` in a file; it must occur exactly once unless `replace_all`.",
             object_schema(["file_path", "old_string", "new_string"], file_path=_FILE,
                           old_string={"type": "string", "minLength": 1}, new_string={"type": "string"},
                           replace_all={"type": "boolean"}), idempotent=False),
    ToolSpec("glob", "Paths matching a doublestar glob pattern (e.g. **/*.py), relative to the workspace root.",
             object_schema(["pattern"], pattern={"type": "string", "minLength": 1}, path=_ROOT),
             idempotent=True, read_only=True),
    ToolSpec("grep", "Lines matching a regular expression (POSIX extended), as path:line:text.", object_schema(
        ["pattern"], pattern={"type": "string", "minLength": 1}, path=_ROOT), idempotent=True, read_only=True),
]}

SandboxCall = tuple[str, dict[str, Any]]  # a call of one of harnesslab's own tools


def as_sandbox_call(name: str, input: dict[str, Any]) -> SandboxCall:
    """The call of harnesslab's own tools that runs a (valid) call of the agent toolset."""
    return _TO_SANDBOX[name](input)


def _bash(input: dict[str, Any]) -> SandboxCall:
    timeout = {"timeout": input["timeout_ms"] / 1000} if input.get("timeout_ms") else {}
    return "bash", {"command": input["command"], **timeout}


def _read(input: dict[str, Any]) -> SandboxCall:
    start, end = input.get("view_range") or (None, None)
    lines = {} if start is None else {"offset": max(1, start)} | ({"limit": end - max(1, start) + 1} if end > 0 else {})
    return "read_file", {"path": input["file_path"], **lines}


def _edit(input: dict[str, Any]) -> SandboxCall:
    path, old, new = input["file_path"], input["old_string"], input["new_string"]
    if input.get("replace_all"):  # harnesslab's edit_file replaces one occurrence only
        return "bash", {"command": f"python3 -c {shlex.quote(_REPLACE_ALL)} {shlex.quote(path)} {shlex.quote(old)} {shlex.quote(new)}"}
    return "edit_file", {"path": path, "old_string": old, "new_string": new}


_REPLACE_ALL = """import sys
path, old, new = sys.argv[1:]
text = open(path, encoding='utf-8').read()
count = text.count(old)
if not count:
    sys.exit(f'edit: old_string not found in {path}')
open(path, 'w', encoding='utf-8').write(text.replace(old, new))
print(f'edited {path} ({count} replacement(s))')"""


def _glob(input: dict[str, Any]) -> SandboxCall:
    pattern = input["pattern"]
    if pattern.startswith("/") or ".." in PurePosixPath(pattern).parts:
        raise ToolError("glob: the pattern must be relative to the search root, without '..'")
    return "list_files", {"path": input.get("path") or ".", "recursive": "/" in pattern or "**" in pattern}


def _grep(input: dict[str, Any]) -> SandboxCall:
    where = shlex.quote(input.get("path") or ".")
    return "bash", {"command": f"grep -rnE --binary-files=without-match --exclude-dir=.git -e {shlex.quote(input['pattern'])} "
                               f"-- {where}; status=$?; if [ $status -eq 1 ]; then echo 'no matches'; exit 0; fi; exit $status"}


_TO_SANDBOX: dict[str, Callable[[dict[str, Any]], SandboxCall]] = {
    "bash": _bash, "read": _read, "edit": _edit, "glob": _glob, "grep": _grep,
    "write": lambda input: ("write_file", {"path": input["file_path"], "content": input["content"]}),
}


def glob_matches(listing: str, pattern: str, root: str | None) -> str:
    """The entries of a list_files `listing` of `root` whose path below `root` matches `pattern`, one per line."""
    below = str(PurePosixPath(root or "."))
    prefix = "" if below == "." else below + "/"
    matcher = glob_regex(pattern)
    found = [line for line in listing.splitlines() if line.startswith(prefix) and matcher.fullmatch(line[len(prefix):].rstrip("/"))]
    return "\n".join(found) or "no matches"


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A doublestar glob as a regular expression: ** crosses directories, * and ? do not, [...] and {a,b} as usual."""
    parts, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] in "*?":
            parts.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and (close := pattern.find("]", i + 2)) != -1:
            parts.append("[" + pattern[i + 1:close].replace("!", "^", 1 if pattern[i + 1] == "!" else 0) + "]")
            i = close + 1
        elif pattern[i] == "{" and (close := pattern.find("}", i)) != -1:
            parts.append("(?:" + "|".join(re.escape(choice) for choice in pattern[i + 1:close].split(",")) + ")")
            i = close + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


class ToolsetSandbox(Sandbox):
    """One of the wrapped provider's sandboxes, offering the agent toolset: each call runs as one call of
    harnesslab's tools in it (under the same idempotency key, so its journal records it once)."""

    def __init__(self, inner: Sandbox):
        self.inner, self.id, self.hand = inner, inner.id, inner.hand
        self.journal, self.root = inner.journal, inner.root

    async def execute(self, name: str, input: Any, key: str | None = None) -> ToolResult:
        started = time.perf_counter()
        try:
            if name == "bash" and isinstance(input, dict) and "command" not in input:
                if input.get("restart") is not True:
                    raise ToolError("bash: command is required (unless restart is true)")
                output, is_error = "bash session restarted", False  # each harnesslab bash call starts a fresh shell
            else:
                validate_input(name, input, AGENT_TOOLS)
                output, is_error = await self._run(name, input, key)
        except ToolError as exc:
            output, is_error = str(exc), True
        return ToolResult(output, is_error, (time.perf_counter() - started) * 1000)

    async def _run(self, name: str, input: dict, key: str | None = None) -> tuple[str, bool]:
        result = await self.inner.execute(*as_sandbox_call(name, input), key)
        if name == "glob" and not result.is_error:
            return glob_matches(result.output, input["pattern"], input.get("path")), False
        return result.output, result.is_error

    async def prepare(self, setup: Setup, fetch: Fetch | None = None) -> None:
        await self.inner.prepare(setup, fetch)  # a task's setup speaks harnesslab's own tools

    async def alive(self) -> bool:
        return await self.inner.alive()

    async def close(self) -> None:
        await self.inner.close()


class ToolsetProvider(ProviderOver):
    """The configured provider, its sandboxes offering the agent toolset instead of harnesslab's own tools."""

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return tuple(AGENT_TOOLS.values())

    async def start(self) -> None:
        await self.inner.start()

    async def provision(self) -> Sandbox:
        return ToolsetSandbox(await self.inner.provision())

    async def attach(self, sandbox_id: str) -> Sandbox:
        return ToolsetSandbox(await self.inner.attach(sandbox_id))

    async def close(self) -> None:
        await self.inner.close()


