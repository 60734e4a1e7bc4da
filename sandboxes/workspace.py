"""The tools over a workspace directory. Standard library only: the Docker executor runs this very code.

Whatever the workspace holds (a FIFO, a file of any size, a tree of any depth, names that are not UTF-8, links
a command swaps while a tool runs), a file tool answers in bounded time and memory, inside the workspace: it opens
only regular files, never blocking, each name relative to its folder (open_beneath), reads no more than it returns
(edit_file: no more than MAX_EDIT_BYTES), and walks trees without recursion. See docs/bounds.md.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from sandboxes.process import CappedOutput, run_command
from sandboxes.tools import ToolError

MAX_LISTED = 2000  # entries list_files returns
MAX_EDIT_BYTES = 8 << 20  # edit_file holds the file in memory: larger ones are for bash (sed, python)
_CHUNK = 1 << 16
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a folder to list, its last name not followed
_PATH_ONLY = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a folder to walk through, not to read
_NO_WAIT = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_LINKS = 40  # symlinks followed in one path, as the kernel allows


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


def read_file(root: Path, path: str, output_limit: int, offset: int | None = None, limit: int | None = None) -> str:
    """The file, or lines [offset, offset + limit) of it (1-based), capped to `output_limit` bytes (head and
    tail): streamed, so a file of any size costs the cap. JSON numbers such as 2.0 count as integers."""
    output = CappedOutput(output_limit)
    with open_regular(root, path, os.O_RDONLY) as f:
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
    data = content.encode("utf-8", errors="surrogateescape")
    f, where = open_regular_at(root, path, os.O_WRONLY | os.O_CREAT, make_parents=True)
    with f:
        replace_contents(root, where, f, data)
    return f"wrote {len(data)} bytes to {path}"


def edit_file(root: Path, path: str, old_string: str, new_string: str) -> str:
    f, where = open_regular_at(root, path, os.O_RDWR)
    with f:
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
        replace_contents(root, where, f, text.replace(old_string, new_string, 1).encode("utf-8", errors="surrogateescape"))
    return f"edited {path}"


def replace_contents(root: Path, where: list[str], file: BinaryIO, data: bytes) -> None:
    """Make `data` the contents of `file`, found at `where` in the workspace, in one step: written to a new file
    beside it, which is renamed over it, so a process killed meanwhile leaves the old contents or the new, never
    a part. In place where its folder takes no new file (read-only): the one case a kill can leave a part."""
    parent = _reopen(root, where[:-1])
    try:
        temporary = f".{where[-1]}.harnesslab-{os.urandom(6).hex()}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_WAIT, 0o600, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            file.seek(0)
            file.truncate(0)
            file.write(data)
            return
        try:
            with os.fdopen(fd, "wb") as new:
                new.write(data)
                os.fchmod(new.fileno(), stat.S_IMODE(os.fstat(file.fileno()).st_mode))
            os.rename(temporary, where[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise
    finally:
        os.close(parent)


def open_regular(root: Path, path: str, flags: int, *, make_parents: bool = False) -> BinaryIO:
    """`path` in the workspace opened as a binary file if it is a regular file, else ToolError. Opening never
    blocks (a FIFO without a writer would) and never leaves the workspace (open_beneath)."""
    return open_regular_at(root, path, flags, make_parents=make_parents)[0]


def open_regular_at(root: Path, path: str, flags: int, *, make_parents: bool = False) -> tuple[BinaryIO, list[str]]:
    """open_regular's file, and the names that lead to it from the root."""
    try:
        fd, where = open_beneath(root, path, flags, make_parents=make_parents)
    except FileNotFoundError:
        raise ToolError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{path} is a directory; use list_files") from None
    except NotADirectoryError:
        raise ToolError(f"{path}: a folder on its path is not a directory") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO with no reader
            raise ToolError(f"{path} is not a regular file; file tools open only regular files (use bash)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory; use list_files" if stat.S_ISDIR(mode) else "not a regular file; file tools open only regular files (use bash)"
        raise ToolError(f"{path} is {kind}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, {os.O_RDONLY: "rb", os.O_WRONLY: "wb"}.get(flags & os.O_ACCMODE, "r+b")), where


def open_beneath(root: Path, path: str, flags: int, *, make_parents: bool = False) -> tuple[int, list[str]]:
    """`path` in the workspace `root` opened with `flags` (and O_NOFOLLOW, O_NONBLOCK): (its fd, the names that
    lead to it from the root). ToolError if it leads outside; `make_parents` makes missing folders on the way.

    Each name is opened relative to its folder's fd, never following a link; a symlink is followed here, by
    walking its target, which must stay inside too. So a link swapped in at any level, at any moment, cannot
    lead outside (resolving the path, then opening it, would follow a link swapped in between)."""
    _check_path(path)
    pending, where = _components(root, path, path), []
    fd, links = os.open(root, _PATH_ONLY), 0
    try:
        while pending:
            name = pending.pop()
            if name == "..":
                if not where:
                    raise _outside(path)
                where.pop()
                fd = _replace(fd, _reopen(root, where))
                continue
            try:
                if not pending:
                    return os.open(name, flags | _NO_WAIT, 0o666, dir_fd=fd), where + [name]
                child = _open_folder_step(name, fd, make_parents)
            except OSError as exc:  # a symlink (ELOOP; ENOTDIR for a folder), or not a folder
                target = _link(name, fd) if exc.errno in (errno.ELOOP, errno.ENOTDIR) else None
                if target is None:
                    raise
                links += 1
                if links > _MAX_LINKS:
                    raise ToolError(f"path {path!r} goes through more than {_MAX_LINKS} symlinks") from None
                pending.extend(_components(root, target, path, len(where)))
                if target.startswith("/"):
                    where = []
                    fd = _replace(fd, _reopen(root, where))
                continue
            fd, where = _replace(fd, child), where + [name]
        return os.open(".", flags | _NO_WAIT, dir_fd=fd), where
    finally:
        os.close(fd)


def _check_path(path: str) -> None:
    if "\x00" in path:
        raise ToolError(f"path {path!r} contains a NUL byte")
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise ToolError(f"path {path!r} is not a valid file name (it holds a lone surrogate)") from None


def _components(root: Path, path: str, asked: str, depth: int = 0) -> list[str]:
    """The names to walk for `path` (the one `asked` for, or a symlink's target in a folder `depth` levels below
    the root) as a stack, the first name last. One that climbs above the root by its `..`s alone, or is absolute
    and not inside `root` (then it is walked from the root), is outside."""
    if path.startswith("/"):
        if path != str(root) and not path.startswith(f"{root}/"):
            raise _outside(asked)
        path, depth = path[len(str(root)):], 0
    names = [name for name in path.split("/") if name not in ("", ".")]
    for name in names:
        depth += -1 if name == ".." else 1
        if depth < 0:
            raise _outside(asked)
    return names[::-1]


def _open_folder_step(name: str, fd: int, make: bool) -> int:
    """Folder `name` in folder `fd` (made first if missing and `make`), opened without following a link."""
    try:
        return os.open(name, _PATH_ONLY, dir_fd=fd)
    except FileNotFoundError:
        if not make:
            raise
    with contextlib.suppress(FileExistsError):  # made meanwhile by someone else: fine
        os.mkdir(name, dir_fd=fd)
    return os.open(name, _PATH_ONLY, dir_fd=fd)


def _reopen(root: Path, where: list[str]) -> int:
    """The folder reached by the names `where` from `root`, opened again (after `..` or an absolute link)."""
    fd = os.open(root, _PATH_ONLY)
    for name in where:
        try:
            child = os.open(name, _PATH_ONLY, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _replace(old: int, new: int) -> int:
    os.close(old)
    return new


def _link(name: str, fd: int) -> str | None:
    """The target of symlink `name` in folder `fd`; None if it is not one (or no longer)."""
    try:
        return os.readlink(name, dir_fd=fd)
    except OSError:
        return None


def _outside(path: str) -> ToolError:
    return ToolError(f"path {path!r} is outside the workspace; use a path relative to the workspace root")


def list_files(root: Path, path: str = ".", recursive: bool = True, output_limit: int = 1 << 20) -> str:
    """Entries under `path`, breadth first (a deep tree costs no recursion), at most MAX_LISTED of them,
    sorted; names that are not UTF-8 are shown with their bytes escaped (\\xff)."""
    try:
        fd, where = open_beneath(root, path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise ToolError(f"{path}: no such directory") from None
    except NotADirectoryError:
        raise ToolError(f"{path} is not a directory") from None
    try:
        names, unreadable = _walk(fd, "".join(f"{name}/" for name in where), recursive)
    finally:
        os.close(fd)
    if len(names) > MAX_LISTED:
        names = sorted(names)[:MAX_LISTED] + [f"[... more than {MAX_LISTED} entries; list a subdirectory ...]"]
    else:
        names.sort()
    if unreadable:
        names.append(f"[... {unreadable} directories could not be read ...]")
    output = CappedOutput(output_limit)
    output.feed("\n".join(names).encode("utf-8", errors="backslashreplace") if names else b"(empty)")
    return output.text()


def _walk(base: int, prefix: str, recursive: bool) -> tuple[list[str], int]:
    """(up to MAX_LISTED + 1 names under folder `base`, each after `prefix`; how many folders could not be read).
    A folder is opened by its path from `base`, its last name not followed, and listed only if it is the very
    folder its parent listed (device and inode): one a link was swapped into the path of is not."""
    names: list[str] = []
    unreadable = 0
    folders: collections.deque[tuple[str, tuple[int, int] | None]] = collections.deque([("", None)])
    while folders and len(names) <= MAX_LISTED:
        folder, seen = folders.popleft()
        try:
            fd = os.open(folder or ".", DIRECTORY, dir_fd=base)
        except OSError:
            unreadable += 1
            continue
        try:
            if seen is not None and _identity(os.fstat(fd)) != seen:
                raise FileNotFoundError(f"{folder} was replaced while listed")
            with os.scandir(fd) as entries:
                for entry in entries:
                    path = f"{folder}/{entry.name}" if folder else entry.name
                    real_dir = entry.is_dir(follow_symlinks=False)
                    if real_dir and recursive:
                        folders.append((path, _identity(entry.stat(follow_symlinks=False))))
                    names.append(_shown(prefix + path) + ("/" if real_dir or _is_dir(entry) else ""))
                    if len(names) > MAX_LISTED:
                        break
        except OSError:
            unreadable += 1
        finally:
            os.close(fd)
    return names, unreadable


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _shown(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 escaped, so the listing is always valid text."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")
