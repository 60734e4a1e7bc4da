"""File tools that change a file (sandboxes/workspace.py) leave it whole when the process writing it is killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandboxes.local import PER_SANDBOX_UIDS
from sandboxes.uid_claims import as_user
from sandboxes.workspace import edit_file, write_file

PROJECT = Path(__file__).resolve().parents[2]
OLD = "def add(a, b):\n    return a - b\n" + "# padding\n" * 2000
NEW = OLD.replace("a - b", "a + b")

# Runs a file tool in a process that SIGKILLs itself halfway through the first write of the file's bytes: the
# moment a worker killed during a tool call (faults=harness_kill) dies at worst.
KILLED_HALFWAY = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from sandboxes import workspace

    class DiesHalfwayThroughWriting:
        def __init__(self, file):
            self.file = file
        def __getattr__(self, name):
            return getattr(self.file, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.file.close()
        def write(self, data):
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    opened = os.fdopen
    workspace.os.fdopen = lambda *args, **kwargs: DiesHalfwayThroughWriting(opened(*args, **kwargs))
    root, tool = Path(sys.argv[1]), sys.argv[2]
    if tool == "edit_file":
        workspace.edit_file(root, "calc.py", "return a - b", "return a + b")
    else:
        workspace.write_file(root, "calc.py", Path(sys.argv[3]).read_text())
""")


@pytest.mark.parametrize("tool", ["edit_file", "write_file"])
def test_a_process_killed_while_it_writes_leaves_the_old_contents_or_the_new(tmp_path, tool):
    root, new = tmp_path / "workspace", tmp_path / "new.py"
    root.mkdir()
    (root / "calc.py").write_text(OLD)
    new.write_text(NEW)
    died = subprocess.run([sys.executable, "-c", KILLED_HALFWAY, str(root), tool, str(new)], cwd=PROJECT,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)}, capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert (root / "calc.py").read_text() in (OLD, NEW)


def test_a_changed_file_keeps_its_mode_and_nothing_else_is_left_beside_it(tmp_path):
    (tmp_path / "run.sh").write_text("echo one\n")
    (tmp_path / "run.sh").chmod(0o751)
    edit_file(tmp_path, "run.sh", "one", "two")
    write_file(tmp_path, "run.sh", "echo three\n")
    assert (tmp_path / "run.sh").read_text() == "echo three\n"
    assert (tmp_path / "run.sh").stat().st_mode & 0o7777 == 0o751
    assert sorted(os.listdir(tmp_path)) == ["run.sh"]


def test_a_file_reached_by_a_symlink_is_changed_and_the_symlink_kept(tmp_path):
    (tmp_path / "real.txt").write_text("old\n")
    (tmp_path / "link.txt").symlink_to("real.txt")
    edit_file(tmp_path, "link.txt", "old", "new")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text() == "new\n"


def test_a_file_in_a_read_only_folder_is_still_changed_in_place(tmp_path):
    """Where no new file can go beside it, the file is changed where it is (as a sandbox's user: root could)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "notes.txt").write_text("old\n")
    user = (PER_SANDBOX_UIDS.start, PER_SANDBOX_UIDS.start) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(folder, *user)
        os.chown(folder / "notes.txt", *user)
    folder.chmod(0o555)
    try:
        as_user(user, edit_file, tmp_path, "locked/notes.txt", "old", "new")
        assert (folder / "notes.txt").read_text() == "new\n" and sorted(os.listdir(folder)) == ["notes.txt"]
    finally:
        folder.chmod(0o755)
