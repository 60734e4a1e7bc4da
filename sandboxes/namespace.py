"""Namespace hands: each command runs under bubblewrap (Debian `bubblewrap`).

Every namespace is unshared (no network), the system is mounted read-only, the workspace is the only
writable place (at /workspace), /tmp is private, and the environment is empty but for PATH, HOME and
LANG. Started as the unprivileged sandbox user (as `local`), under the same resource limits, bwrap
makes that user's own user namespace. File tools work on the same workspace from outside, confined to
it as for `local`.
bwrap is not asked to start a new session, so a timeout's kill of the process group reaches every
process inside; and when a command ends, its PID namespace ends with it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sandboxes.base import SandboxError
from sandboxes.local import LocalSandbox, LocalSandboxProvider

_SYSTEM = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl")  # mounted read-only if present
_USR_LINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}
WORKSPACE = "/workspace"


class NamespaceSandbox(LocalSandbox):
    hand = "namespace"

    def command_argv(self, command: str) -> list[str]:
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--clearenv"]
        for path in _SYSTEM:
            if Path(path).exists():
                argv += ["--ro-bind", path, path]
        for link, target in _USR_LINKS.items():
            argv += ["--symlink", target, link]
        argv += [
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--bind", str(self.root), WORKSPACE, "--chdir", WORKSPACE,
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", WORKSPACE,
            "--setenv", "LANG", "C.UTF-8", "--setenv", "TERM", "dumb",
            "--", "bash", "-c", command,
        ]
        return self.limited(argv)

    def command_env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin"}  # for finding bwrap itself; --clearenv empties it inside


class NamespaceSandboxProvider(LocalSandboxProvider):
    hand = "namespace"
    sandbox_class = NamespaceSandbox
    isolated = True

    def __init__(self, *args, **kwargs):
        if shutil.which("bwrap") is None:
            raise SandboxError("sandbox=namespace needs bubblewrap: apt-get install bubblewrap (or use sandbox=local)")
        super().__init__(*args, **kwargs)
