"""The local provider's own options."""
from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from sandboxes.base import SandboxError
from sandboxes.local import PER_SANDBOX, LocalSandboxProvider, workspaces_folder

PROJECT = Path(__file__).resolve().parents[2]


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


async def test_sandboxes_provisioned_at_once_share_one_temporary_root(monkeypatch):
    """The first provisions of a provider with no sandbox.root run in threads at once: each must find the root the
    other made, not make one of its own (a workspace made under a root the provider then forgot was "gone" at the
    check)."""
    make_temporary_folder = tempfile.mkdtemp

    def slow_mkdtemp(*args, **kwargs):
        time.sleep(0.05)  # long enough for the other thread to look for the root meanwhile
        return make_temporary_folder(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", slow_mkdtemp)
    provider = LocalSandboxProvider()
    try:
        sandboxes = await asyncio.gather(*(provider.provision() for _ in range(4)))
        assert len({sandbox.root.parent for sandbox in sandboxes}) == 1
        for sandbox in sandboxes:
            assert await (await provider.attach(sandbox.id)).alive()
    finally:
        await provider.close()
    assert not any(sandbox.root.parent.exists() for sandbox in sandboxes)


@pytest.mark.parametrize("user", [PER_SANDBOX, None], ids=["user-per-sandbox", "as-this-process"])
async def test_a_shared_root_keeps_its_mode_and_the_workspaces_go_in_a_private_folder_inside(tmp_path, user):
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    provider = LocalSandboxProvider(root=str(shared), user=user)
    try:
        sandbox = await provider.provision()
        result = await sandbox.execute("bash", {"command": "echo hi > a.txt && cat a.txt"})
        assert (result.output.strip(), result.is_error) == ("hi", False)
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
        private = sandbox.root.parent
        assert private.parent == shared and private.stat().st_uid == os.geteuid()
        assert stat.S_IMODE(private.stat().st_mode) & 0o066 == 0  # nobody else lists it or writes in it
        later = LocalSandboxProvider(root=str(shared), user=user)  # another process finds the same workspaces
        assert await (await later.attach(sandbox.id)).alive()
    finally:
        await provider.close()


@pytest.mark.parametrize("planted_by", ["anyone", "another-user"])
async def test_a_folder_planted_where_the_private_folder_goes_is_refused(tmp_path, planted_by):
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = workspaces_folder(shared.resolve())
    planted.mkdir()
    if planted_by == "anyone":
        planted.chmod(0o777)
    elif os.geteuid() == 0:
        os.chown(planted, 65534, 65534)  # private, but not ours
    else:
        pytest.skip("planting a folder of another user needs root")
    with pytest.raises(SandboxError, match="is not a private folder"):
        await LocalSandboxProvider(root=str(shared)).provision()


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


GROUP_READ = textwrap.dedent("""
    import asyncio, os, sys
    from sandboxes.local import LocalSandboxProvider

    async def main():
        os.setgroups([int(sys.argv[2])])  # root with a supplementary group, as on many hosts
        provider = LocalSandboxProvider(root=sys.argv[1])
        try:
            sandbox = await provider.provision()
            secret = sandbox.root / "group-secret"
            secret.write_text("SECRET")
            os.chown(secret, 0, int(sys.argv[2]))
            secret.chmod(0o040)  # only that group may read it
            read = await sandbox.execute("read_file", {"path": "group-secret"})
            print(read.is_error, "SECRET" in read.output)
        finally:
            await provider.close()

    asyncio.run(main())
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox users of their own need root")
def test_read_file_cannot_read_with_a_supplementary_group_of_root(tmp_path):
    """Commands run without root's supplementary groups (setpriv --clear-groups), and so do file tools."""
    group = 4243  # a group of root's in the child process only: no entry in /etc/group is needed
    done = subprocess.run([sys.executable, "-c", GROUP_READ, str(tmp_path / "hands"), str(group)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout == "True False\n", done.stdout + done.stderr
