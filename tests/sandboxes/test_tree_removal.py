"""remove_tree (sandboxes/tree_removal.py): any depth, folders their owner made unreadable or read-only."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandboxes.tree_removal import remove_tree

NOBODY = 65534
# As root (whom no mode stops), becomes the unprivileged user argv[2] once imports are done. Builds a tree in
# argv[1], folders of it chmod 000 and 555 (each holding a file and a folder), and a chain of read-only folders
# deeper than remove_tree holds open; then removes it.
BUILD_AND_REMOVE = """
import os, sys
from sandboxes.tree_removal import remove_tree

top, user = sys.argv[1], int(sys.argv[2])
if os.geteuid() == 0:
    os.setgroups([])
    os.setresgid(user, user, user)
    os.setresuid(user, user, user)
os.mkdir(top)
for name, mode in [("unreadable", 0o000), ("read_only", 0o555)]:
    os.makedirs(f"{top}/{name}/sub/inner")
    open(f"{top}/{name}/file", "w").close()
    os.chmod(f"{top}/{name}/sub", mode)
    os.chmod(f"{top}/{name}", mode)
fd = os.open(top, os.O_RDONLY)
chain = []
for _ in range(150):
    os.mkdir("d", dir_fd=fd)
    fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
    chain.append(parent)
os.close(os.open("file", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
for folder in [fd] + chain[:0:-1]:
    os.fchmod(folder, 0o555)
    os.close(folder)
os.close(chain[0])
remove_tree(top)
"""


def test_removes_a_deep_tree_with_unreadable_and_read_only_folders_of_its_owner(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    if os.geteuid() == 0:
        os.chown(home, NOBODY, NOBODY)
    done = subprocess.run([sys.executable, "-c", BUILD_AND_REMOVE, str(home / "tree"), str(NOBODY)],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.listdir(home) == []


def test_a_missing_tree_is_file_not_found(tmp_path: Path):
    try:
        remove_tree(tmp_path / "missing")
    except FileNotFoundError:
        return
    raise AssertionError("remove_tree of a missing folder raised nothing")
