"""The local provider's own options."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandboxes.local import LocalSandboxProvider


async def test_keep_leaves_workspaces_for_whoever_checks_them(tmp_path):
    kept = LocalSandboxProvider(root=str(tmp_path), keep=True)
    sandbox = await kept.provision()
    await kept.close()
    assert await sandbox.alive()
    later = LocalSandboxProvider(root=str(tmp_path))
    assert await (await later.attach(sandbox.id)).alive()
    await later.close()
    with pytest.raises(ValueError, match="needs a sandbox.root"):
        LocalSandboxProvider(keep=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox users of their own need root")
async def test_a_workspace_stays_reachable_while_another_pytest_process_starts(tmp_path):
    """Every pytest process that starts makes /tmp/pytest-of-<user> 0700 again (pytest's own check), so the tests'
    folders must not depend on it (tests/conftest.py puts them elsewhere): a sandbox user, and a new provider's
    attach as a new brain's, still reach a workspace under tmp_path after another pytest process has started."""
    hands = LocalSandboxProvider(root=str(tmp_path / "hands"))
    try:
        sandbox = await hands.provision()
        assert not (await sandbox.execute("write_file", {"path": "a.txt", "content": "hi"})).is_error
        _run_another_pytest_process(tmp_path / "other")
        attached = await LocalSandboxProvider(root=str(tmp_path / "hands")).attach(sandbox.id)
        for box, name, input in [(sandbox, "read_file", {"path": "a.txt"}), (attached, "bash", {"command": "cat a.txt"})]:
            result = await box.execute(name, input)
            assert (result.output.strip(), result.is_error) == ("hi", False), f"{name} in {tmp_path}"
    finally:
        await hands.close()


def _run_another_pytest_process(folder: Path) -> None:
    """A pytest run of its own (one test using tmp_path, none of our conftest), as another test process on the host."""
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_other.py").write_text("def test_uses_tmp_path(tmp_path):\n    assert tmp_path.is_dir()\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider", "-c",
                           str(folder / "pytest.ini"), str(folder)], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
