"""Sandbox users: host-wide claims on per-sandbox uids, and file access as a sandbox's user (`as_user`).

A sandbox's processes are killed by uid, so no two live sandboxes on a host, in any process, may share one.

A claim is a symlink /run/harnesslab-uids/<uid> -> the workspace that holds the uid, made exclusively (root only:
/run is root's). A claim whose workspace is gone and whose uid runs no process is stale (a run killed by
SIGKILL, a kept workspace deleted from outside) and is taken over, under a lock so two takers cannot both win.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import platform
from pathlib import Path
from typing import Any, Callable, Iterator

from sandboxes.process import live_processes_of

CLAIMS = Path("/run/harnesslab-uids")
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159}  # the system call: libc's setgroups() changes every thread


def claim(uid: int, workspace: Path) -> bool:
    """Claim `uid` for `workspace` (which exists already); False if a live sandbox holds it."""
    CLAIMS.mkdir(mode=0o700, exist_ok=True)
    entry = CLAIMS / str(uid)
    try:
        os.symlink(workspace, entry)
        return True
    except FileExistsError:
        pass
    with _locked():
        holder = _holder(entry)
        if holder is not None and (os.path.isdir(holder) or live_processes_of(uid)):
            return False
        _remove(entry)
        try:
            os.symlink(workspace, entry)
        except FileExistsError:  # claimed in between by one who found it free, which takes no lock
            return False
        return True


def move(uid: int, workspace: Path, to: Path) -> None:
    """Rename `workspace` to `to`, and its claim on `uid` with it, in one step for any taker: a closing sandbox
    keeps its uid while the renamed tree is swept and removed (else, its workspace gone, another could take the
    uid over in between, and the sweep kill the taker's processes). FileNotFoundError if `workspace` is gone."""
    entry = CLAIMS / str(uid)
    with _locked():
        os.rename(workspace, to)
        if _holder(entry) == str(workspace):
            _point(entry, to)


def release(uid: int, workspace: Path) -> None:
    """Give `uid` up, if `workspace` still holds it (a stale claim may have been taken over since)."""
    entry = CLAIMS / str(uid)
    with _locked():
        if _holder(entry) == str(workspace):
            _remove(entry)


def _holder(entry: Path) -> str | None:
    try:
        return os.readlink(entry)
    except (FileNotFoundError, OSError):  # none, or not a symlink: nobody's
        return None


def _point(entry: Path, workspace: Path) -> None:
    """`entry` to `workspace` at once (a new link renamed over it): never missing in between."""
    new = entry.with_name(f".{entry.name}.new")
    _remove(new)
    os.symlink(workspace, new)
    os.replace(new, entry)


def _remove(entry: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if entry.is_dir() and not entry.is_symlink():
            entry.rmdir()
        else:
            entry.unlink()


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    fd = os.open(CLAIMS / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def as_user(user: tuple[int, int], function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)` with this thread's file-system identity that of `user`, as the sandbox's commands run
    (setpriv --clear-groups): fsuid and fsgid (setfsuid/setfsgid), and no supplementary groups, which setfsgid
    keeps. Per thread: the setgroups system call changes the caller's alone (libc's wrapper, every thread's)."""
    libc, groups = _libc(), os.getgroups()
    _setgroups(libc, [])
    old_gid, old_uid = libc.setfsgid(user[1]), libc.setfsuid(user[0])
    try:
        return function(*args)
    finally:
        libc.setfsuid(old_uid)
        libc.setfsgid(old_gid)
        _setgroups(libc, groups)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setgroups(libc: Any, groups: list[int]) -> None:
    number = _SYS_SETGROUPS.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"no setgroups system call number known for {platform.machine()}")
    if libc.syscall(number, len(groups), (ctypes.c_uint * len(groups))(*groups)) != 0:
        raise OSError(ctypes.get_errno(), f"setgroups: {os.strerror(ctypes.get_errno())}")
