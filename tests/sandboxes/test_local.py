"""The local provider's own options."""
from __future__ import annotations

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
