"""The tools over a workspace directory. Standard library only: the Docker executor runs this very code.

Whatever the workspace holds (a FIFO, a file of any size, a tree of any depth, names that are not UTF-8),
a file tool answers in bounded time and memory: it opens only regular files, never blocking, reads no more
than it returns (edit_file: no more than MAX_EDIT_BYTES), and walks trees without recursion. See docs/bounds.md.
"""
from __future__ import annotations

import collections
import errno
import os
import stat
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from sandboxes.process import CappedOutput, run_command
from sandboxes.tools import ToolError

MAX_LISTED = 2000  # entries list_files returns
MAX_EDIT_BYTES = 8 << 20  # edit_file holds the file in memory: larger ones are for bash (sed, python)
_CHUNK = 1 << 16
_OPEN_DIRS = 64  # remove_tree holds at most this many directories open; deeper ones are moved up first
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
        return list_files(root, input.get("path", "."), input.get("recursive", True), output_limit)
    raise ToolError(f"unknown tool {name!r}")


def resolve(root: Path, path: str) -> Path:
    """`path` inside the workspace `root` (symlinks followed), or ToolError if it escapes."""
    if "\x00" in path:
        raise ToolError(f"path {path!r} contains a NUL byte")
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise ToolError(f"path {path!r} is not a valid file name (it holds a lone surrogate)") from None
    candidate = Path(os.path.realpath(root / path))
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"path {path!r} is outside the workspace; use a path relative to the workspace root")
    return candidate


def read_file(root: Path, path: str, output_limit: int, offset: int | None = None, limit: int | None = None) -> str:
    """The file, or lines [offset, offset + limit) of it (1-based), capped to `output_limit` bytes (head and
    tail): streamed, so a file of any size costs the cap. JSON numbers such as 2.0 count as integers."""
    output = CappedOutput(output_limit)
    with open_regular(resolve(root, path), path, os.O_RDONLY) as f:
        if offset is None and limit is None:
            _feed_ends(f, output)
            return output.text()
        start = int(offset or 1) - 1
        lines = _feed_lines(f, output, start, None if limit is None else start + int(limit))
    if start and lines <= start:
        raise ToolError(f"offset {offset} is past the end of {path}, which has {lines} line(s)")
    return output.text()


def _feed_ends(f: BinaryIO, output: CappedOutput) -> None:
    """Feed the whole file; of a file larger than the cap, only what the cap keeps is read."""
    size = os.fstat(f.fileno()).st_size
    if size > output.limit:
        output.feed(f.read(output.head_size))
        skipped = max(size - f.tell() - output.tail_size, 0)
        f.seek(skipped, os.SEEK_CUR)
        output.skip(skipped)
    while chunk := f.read(_CHUNK):
        output.feed(chunk)


def _feed_lines(f: BinaryIO, output: CappedOutput, start: int, stop: int | None) -> int:
    """Feed lines [start, stop) (0-based); return how many lines were read, a last one without newline included."""
    line, last = 0, b""
    while (stop is None or line < stop) and (chunk := f.read(_CHUNK)):
        last, begin = chunk, 0
        if line < start:
            skip = min(start - line, chunk.count(b"\n"))
            begin, line = _after_newlines(chunk, 0, skip), line + skip
            if line < start:
                continue
        end = len(chunk)
        if stop is not None:
            take = min(stop - line, chunk.count(b"\n", begin))
            line += take
            if line == stop:
                end = _after_newlines(chunk, begin, take)
        else:
            line += chunk.count(b"\n", begin)
        output.feed(chunk[begin:end])
    return line + (1 if last and not last.endswith(b"\n") and (stop is None or line < stop) else 0)


def _after_newlines(chunk: bytes, begin: int, count: int) -> int:
    """The position just after the `count`-th newline of `chunk` from `begin` (which has that many)."""
    for _ in range(count):
        begin = chunk.index(b"\n", begin) + 1
    return begin


def write_file(root: Path, path: str, content: str) -> str:
    target = resolve(root, path)
    if target.is_dir():
        raise ToolError(f"{path} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8", errors="surrogateescape")
    with open_regular(target, path, os.O_WRONLY | os.O_CREAT) as f:
        f.truncate(0)
        f.write(data)
    return f"wrote {len(data)} bytes to {path}"


def edit_file(root: Path, path: str, old_string: str, new_string: str) -> str:
    with open_regular(resolve(root, path), path, os.O_RDWR) as f:
        # refused by its size, unread; or read, in case it grew since
        if os.fstat(f.fileno()).st_size > MAX_EDIT_BYTES or len(data := f.read(MAX_EDIT_BYTES + 1)) > MAX_EDIT_BYTES:
            raise ToolError(f"{path} is larger than edit_file's limit of {MAX_EDIT_BYTES} bytes; "
                            "edit it with bash instead (sed, python)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path} is not UTF-8 text; edit it with bash instead") from None
        count = text.count(old_string)
        if count == 0:
            raise ToolError(f"old_string not found in {path}; read the file and copy the exact text")
        if count > 1:
            raise ToolError(f"old_string occurs {count} times in {path}; include more surrounding text so it is unique")
        f.seek(0)
        f.truncate(0)
        f.write(text.replace(old_string, new_string, 1).encode("utf-8", errors="surrogateescape"))
    return f"edited {path}"


def open_regular(target: Path, path: str, flags: int) -> BinaryIO:
    """`target` opened as a binary file if it is a regular file, else ToolError. Opening never blocks (a FIFO
    without a writer would) and never follows a symlink swapped in since `resolve`."""
    try:
        fd = os.open(target, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:
        raise ToolError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{path} is a directory; use list_files") from None
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ELOOP):  # a FIFO with no reader; a symlink
            raise ToolError(f"{path} is not a regular file; file tools open only regular files (use bash)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory; use list_files" if stat.S_ISDIR(mode) else "not a regular file; file tools open only regular files (use bash)"
        raise ToolError(f"{path} is {kind}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, {os.O_RDONLY: "rb", os.O_WRONLY: "wb"}.get(flags & os.O_ACCMODE, "r+b"))


def list_files(root: Path, path: str = ".", recursive: bool = True, output_limit: int = 1 << 20) -> str:
    """Entries under `path`, breadth first (a deep tree costs no recursion), at most MAX_LISTED of them,
    sorted; names that are not UTF-8 are shown with their bytes escaped (\\xff)."""
    base = resolve(root, path)
    if not base.is_dir():
        raise ToolError(f"{path} is not a directory" if base.exists() else f"{path}: no such directory")
    names, unreadable = _walk(base, len(str(root)) + 1, recursive)
    if len(names) > MAX_LISTED:
        names = sorted(names)[:MAX_LISTED] + [f"[... more than {MAX_LISTED} entries; list a subdirectory ...]"]
    else:
        names.sort()
    if unreadable:
        names.append(f"[... {unreadable} directories could not be read ...]")
    output = CappedOutput(output_limit)
    output.feed("\n".join(names).encode("utf-8", errors="backslashreplace") if names else b"(empty)")
    return output.text()


def _walk(base: Path, strip: int, recursive: bool) -> tuple[list[str], int]:
    """(up to MAX_LISTED + 1 names relative to the root, how many folders could not be read)."""
    names: list[str] = []
    unreadable = 0
    folders = collections.deque([str(base)])
    while folders and len(names) <= MAX_LISTED:
        try:
            with os.scandir(folders.popleft()) as entries:
                for entry in entries:
                    real_dir = entry.is_dir(follow_symlinks=False)
                    if real_dir and recursive:
                        folders.append(entry.path)
                    names.append(_shown(entry.path[strip:]) + ("/" if real_dir or _is_dir(entry) else ""))
                    if len(names) > MAX_LISTED:
                        break
        except OSError:
            unreadable += 1
    return names, unreadable


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _shown(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 escaped, so the listing is always valid text."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def remove_tree(path: str | Path) -> None:
    """Delete directory `path` and everything in it, symlinks not followed, however deep: iteratively, with
    at most _OPEN_DIRS directories open (a deeper one is first moved up, into `path`). OSError if it cannot."""
    top = _Folder.open(path, "")
    stack = [top]
    try:
        while stack:
            folder = stack[-1]
            if not folder.subfolders:
                stack.pop()
                os.close(folder.fd)
                if stack:
                    os.rmdir(folder.name, dir_fd=stack[-1].fd)
                continue
            name = folder.subfolders.pop()
            if len(stack) >= _OPEN_DIRS:
                moved = f".harnesslab-removing-{uuid.uuid4().hex}"
                os.rename(name, moved, src_dir_fd=folder.fd, dst_dir_fd=top.fd)
                top.subfolders.append(moved)
            else:
                stack.append(_Folder.open(name, name, folder.fd))
    finally:
        for folder in stack:
            os.close(folder.fd)
    os.rmdir(path)


class _Folder:
    """An open directory being emptied: its files are gone once opened; `subfolders` are still to remove."""

    def __init__(self, fd: int, name: str, subfolders: list[str]):
        self.fd, self.name, self.subfolders = fd, name, subfolders

    @classmethod
    def open(cls, path: str | Path, name: str, parent: int | None = None) -> _Folder:
        fd = _open_folder(path, parent)
        try:
            subfolders = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.name)
                    else:
                        os.unlink(entry.name, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, name, subfolders)


def _open_folder(path: str | Path, parent: int | None) -> int:
    try:
        return os.open(path, _DIRECTORY, dir_fd=parent)
    except PermissionError:  # a folder its owner made unreadable (chmod 000): ours to open again
        os.chmod(path, 0o700, dir_fd=parent)
        return os.open(path, _DIRECTORY, dir_fd=parent)
