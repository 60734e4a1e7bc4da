"""Removing a directory tree of any depth without recursion, holding a bounded number of folders open.

Host side only (sandbox close, test clean-up): the Docker executor does not ship this module.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from sandboxes.workspace import DIRECTORY

_OPEN_DIRS = 64  # remove_tree holds at most this many directories open; deeper ones are moved up first


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
                top.subfolders.append(_move_up(name, folder.fd, top.fd))
            else:
                stack.append(_Folder.open(name, name, folder.fd))
    finally:
        for folder in stack:
            os.close(folder.fd)
    os.rmdir(path)


def _move_up(name: str, parent: int, top: int) -> str:
    """Move folder `name` from folder `parent` into folder `top`, under a new name, which it returns."""
    os.close(_open_folder(name, parent))  # a folder moved to another parent must be writable: its `..` changes
    moved = f".harnesslab-removing-{uuid.uuid4().hex}"
    os.rename(name, moved, src_dir_fd=parent, dst_dir_fd=top)
    return moved


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
    """Folder `path` opened to be emptied. One its owner made unreadable or read-only (chmod 000, 555) is, if it is
    ours, made ours to empty (rwx) first; the folders of others only root can empty, whatever their mode."""
    try:
        fd = os.open(path, DIRECTORY, dir_fd=parent)
    except PermissionError:
        os.chmod(path, 0o700, dir_fd=parent)
        return os.open(path, DIRECTORY, dir_fd=parent)
    try:
        status = os.fstat(fd)
        if status.st_mode & 0o700 != 0o700 and status.st_uid == os.geteuid():
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd
