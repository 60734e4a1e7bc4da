"""Host-wide uid claims (sandboxes/uid_claims.py), raced by another process at the moments that matter."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sandboxes import uid_claims
from sandboxes.local import PER_SANDBOX_UIDS, LocalSandboxProvider

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="uid claims live in /run, root's")

CLAIM = "import sys; from pathlib import Path; from sandboxes import uid_claims; " \
        "print(uid_claims.claim(int(sys.argv[1]), Path(sys.argv[2])))"


def claim_in_another_process(uid: int, workspace: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", CLAIM, str(uid), str(workspace)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def other_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / f"other-{uuid.uuid4().hex[:8]}"
    workspace.mkdir()
    return workspace


async def test_a_closing_sandbox_keeps_its_uid_until_its_workspace_is_removed(tmp_path):
    """close() renames the workspace, then kills every process of its uid: had the uid been free in between (its
    workspace gone, none of its processes left), another process could claim it and have its processes killed."""
    provider = LocalSandboxProvider(root=str(tmp_path / "hands"))
    sandbox = await provider.provision()
    uid, other = sandbox.user[0], other_workspace(tmp_path)
    sweep, during_close = sandbox._sweep, []

    async def sweep_raced_by_another_process():
        during_close.append(claim_in_another_process(uid, other))
        await sweep()

    sandbox._sweep = sweep_raced_by_another_process
    try:
        await provider.close()
        assert during_close == [False]  # the closing sandbox still held it
        assert claim_in_another_process(uid, other)  # and gave it up once its tree was gone
    finally:
        uid_claims.release(uid, other)


def test_a_takeover_that_loses_the_uid_to_a_free_claim_says_so(tmp_path, monkeypatch):
    """A stale claim is removed and claimed anew under the lock; one who finds the uid free in between takes it
    without the lock. The taker then gets False, not an exception, and the winner keeps the uid."""
    uid = PER_SANDBOX_UIDS.start + uuid.uuid4().int % len(PER_SANDBOX_UIDS)
    gone, taker, winner = (other_workspace(tmp_path) for _ in range(3))
    assert uid_claims.claim(uid, gone)
    gone.rmdir()  # stale: its workspace deleted from outside, no process of its uid
    remove, raced = uid_claims._remove, []

    def remove_raced_by_another_process(entry):
        remove(entry)
        raced.append(claim_in_another_process(uid, winner))

    monkeypatch.setattr(uid_claims, "_remove", remove_raced_by_another_process)
    try:
        assert uid_claims.claim(uid, taker) is False
        assert raced == [True] and os.readlink(uid_claims.CLAIMS / str(uid)) == str(winner)
    finally:
        monkeypatch.undo()
        uid_claims.release(uid, winner)
