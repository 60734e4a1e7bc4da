"""Host-wide claims on per-sandbox uids: a sandbox's processes are killed by uid, so no two live sandboxes on a
host, in any process, may share one.

A claim is a symlink /run/harnesslab-uids/<uid> -> the workspace that holds the uid, made exclusively (root only:
/run is root's). A claim whose workspace is gone and whose uid runs no process is stale (a run killed by
SIGKILL, a kept workspace deleted from outside) and is taken over, under a lock so two takers cannot both win.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from sandboxes.process import live_processes_of

CLAIMS = Path("/run/harnesslab-uids")


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
        os.symlink(workspace, entry)
        return True


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
