"""Local hands: one fresh workspace directory per sandbox, commands run as host processes.

Not an isolation boundary (bash sees the host's files, processes and network); file tools are confined
to the workspace. When harnesslab runs as root, commands run as an unprivileged user who owns the workspace
(by default a uid of the sandbox's own), so they cannot read other processes' environment or memory, root's
files, or another sandbox's workspace, and one sandbox's processes do not count against another's limits.
Use sandbox=namespace or sandbox=docker for untrusted work.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from sandboxes import uid_claims, workspace
from sandboxes.base import (
    Sandbox, SandboxError, SandboxLost, SandboxProvider, WorkerSandboxes, effective_timeout, worker_sandboxes,
)
from sandboxes.journal import Journal
from sandboxes.process import live_processes_of
from sandboxes.tree_removal import remove_tree
from sandboxes.tools import ToolError

log = logging.getLogger(__name__)

_ID = re.compile(r"^[a-z]+-[0-9a-f]{16}$")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PER_SANDBOX = "per_sandbox"  # sandbox.user: every sandbox a uid of its own, so one's processes and files are not another's
PER_SANDBOX_UIDS = range(200_000, 200_000 + (1 << 24))  # no passwd entries; far above the host's own users
# per command of an unprivileged sandbox user; nproc counts every process of that user on the host
LIMITS = {"nproc": 1024, "as": 4 << 30, "fsize": 1 << 30, "nofile": 4096}
_SWEEPS = 50  # at most, rounds of killing a sandbox user's processes after a command until none is alive


class LocalSandbox(Sandbox):
    hand = "local"

    def __init__(self, sandbox_id: str, root: Path, *, timeout_s: float, max_timeout_s: float, output_limit: int,
                 user: tuple[int, int] | None = None, own_user: bool = False):
        self.id, self.root = sandbox_id, root
        self.timeout_s, self.max_timeout_s, self.output_limit = timeout_s, max_timeout_s, output_limit
        self.user = user  # (uid, gid) commands run as, owning the workspace; None: as this process
        self.own_user = own_user  # the user is this sandbox's alone: every process of it is the sandbox's

    def command_argv(self, command: str) -> list[str]:
        return self.limited(["bash", "-c", command])

    def limited(self, argv: list[str]) -> list[str]:
        """`argv` as the sandbox's user (setpriv) under its resource limits (prlimit), both util-linux. Root
        ignores RLIMIT_NPROC: with no user of its own, a command runs unlimited. The switch happens in the
        child's exec chain rather than in Python's fork: a fork that changes uid cannot use vfork, and
        copying this process's page tables for every command was the largest cost of a busy harness."""
        if self.user is None:
            return argv
        uid, gid = self.user
        limits = [f"--{name}={value}" for name, value in LIMITS.items()]
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "prlimit", *limits, "--", *argv]

    def command_env(self) -> dict[str, str]:
        """Deliberately minimal: nothing from the host's environment (credentials) leaks in."""
        return {"PATH": _PATH, "HOME": str(self.root), "LANG": "C.UTF-8", "TERM": "dumb", "PWD": str(self.root)}

    async def _run(self, name: str, input: dict) -> tuple[str, bool]:
        if not self.root.is_dir():
            raise SandboxLost(f"sandbox {self.id}: workspace {self.root} is gone")
        timeout_s = effective_timeout(input, self.timeout_s, self.max_timeout_s)
        if name == "bash":
            try:
                result = await workspace.run_tool(self.root, name, input, argv=self.command_argv, env=self.command_env(),
                                                  timeout_s=timeout_s, output_limit=self.output_limit)
            finally:
                await self._sweep()
        else:
            result = await self._file_tool(name, input, timeout_s), False
        if not self.root.is_dir():  # destroyed while the tool ran: whatever it did went with it
            raise SandboxLost(f"sandbox {self.id}: workspace {self.root} vanished while {name} ran")
        return result

    async def _file_tool(self, name: str, input: dict, timeout_s: float) -> str:
        """A file tool, off the event loop, as the sandbox's user with no supplementary group, as its commands run
        (so a symlink it swaps in cannot make us write for root), within the call's timeout; a call stuck in the
        kernel is abandoned, never waited for."""
        call = functools.partial(workspace.file_tool, self.root, name, input, self.output_limit)
        if self.user is not None:
            call = functools.partial(uid_claims.as_user, self.user, call)
        try:
            return await asyncio.wait_for(in_daemon_thread(call), timeout_s)
        except asyncio.TimeoutError:
            raise ToolError(f"{name} did not finish within {timeout_s:g}s") from None

    async def _sweep(self) -> None:
        """Kill every process of the sandbox's own user: one a command detached (setsid, nohup) has left its
        process group, which the command's kill reached, but not its uid."""
        if not self.own_user:
            return
        uid, gid = self.user
        for _ in range(_SWEEPS):
            killer = await asyncio.create_subprocess_exec(
                "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "kill", "-KILL", "-1",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": _PATH})
            if await killer.wait() != 0 or not await asyncio.to_thread(live_processes_of, uid):
                return  # none was left to signal, or those signalled are dead
            await asyncio.sleep(0.005)

    async def alive(self) -> bool:
        return self.root.is_dir()

    async def close(self) -> None:
        """Gone at once (a rename), then deleted: a command still writing into it cannot keep it half alive.
        Never raises: what cannot be removed is logged, and teardown goes on."""
        doomed = self.root.with_name(f".closed-{self.root.name}-{uuid.uuid4().hex[:8]}")
        try:
            if self.own_user:  # its uid's claim goes with it: held until the tree is swept and removed
                await asyncio.to_thread(uid_claims.move, self.user[0], self.root, doomed)
            else:
                os.rename(self.root, doomed)
        except FileNotFoundError:  # removed already (by someone else): its processes and uid are still to end
            doomed = None
        await self._sweep()
        if doomed is not None:
            await remove_quietly(doomed)
        if self.own_user:  # its uid is free for another sandbox
            await asyncio.to_thread(uid_claims.release, self.user[0], doomed or self.root)


async def remove_quietly(folder: Path) -> None:
    """Remove `folder` however deep it is (off the event loop); a failure is logged, never raised."""
    try:
        await in_daemon_thread(remove_tree, folder)
    except FileNotFoundError:
        pass
    except Exception as exc:  # teardown never fails a run: the sessions' results matter more than a folder
        log.warning("could not remove %s: %s: %s", folder, type(exc).__name__, exc)


async def in_daemon_thread(function: Callable[[], Any], *args: Any) -> Any:
    """`function(*args)` in a daemon thread of its own. Unlike asyncio.to_thread's pool, whose threads the
    interpreter joins at exit, a call stuck in the kernel cannot keep the process from ending (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # the caller may have stopped waiting (a timeout, a cancel)
            outcome()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as exc:
            report = functools.partial(settle, functools.partial(future.set_exception, exc))
        else:
            report = functools.partial(settle, functools.partial(future.set_result, result))
        try:
            loop.call_soon_threadsafe(report)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    threading.Thread(target=run, name="harnesslab-file-tool", daemon=True).start()
    return await future


def workspaces_folder(root: Path) -> Path:
    """Where the workspaces under sandbox.root `root` go: `root` itself if it is this user's private folder (or
    does not exist yet, and will be made one); else a private folder of this user's inside it, so a shared folder
    (a 1777 /tmp, a 0755 home) is never changed. Only a folder private to this user gains search permission."""
    try:
        info = root.stat()
    except FileNotFoundError:
        return root
    if info.st_uid == os.geteuid() and not info.st_mode & 0o066:
        return root
    return root / f"harnesslab-workspaces-{os.geteuid()}"


def _check_reachable(folder: Path) -> None:
    for above in [folder, *folder.parents]:
        if not above.stat().st_mode & 0o001:
            raise SandboxError(
                f"sandbox.root {folder}: its commands run as an unprivileged user, who cannot pass through {above} "
                f"(mode {above.stat().st_mode & 0o777:o}); choose a root every user may pass through, or sandbox.user=null")


class LocalSandboxProvider(SandboxProvider):
    """Workspaces live under `root` (default: a temporary directory removed on close)."""

    hand = "local"
    sandbox_class = LocalSandbox
    isolated = False  # commands see the host (its files, network, processes): a known difference
    sandboxes_outlive_process = True  # a workspace is a folder: under a root given, with `keep`, it stays

    def __init__(
        self,
        root: str | None = None,
        timeout_s: float = 30.0,
        max_timeout_s: float = 600.0,
        output_limit: int = 30_000,
        keep: bool = False,
        journal: str | None = None,
        user: str | None = PER_SANDBOX,
    ):
        self._root = Path(root) if root else None  # one folder per sandbox below it
        self._owns_root = root is None
        if keep and root is None:
            raise ValueError("sandbox.keep needs a sandbox.root that outlives this process")
        self.keep = keep  # leave workspaces on close: a worker's finished sessions are checked by someone else
        self.journal = Journal(journal) if journal else None
        self._options = dict(timeout_s=timeout_s, max_timeout_s=max_timeout_s, output_limit=output_limit)
        self._user = self._identity(user) if user != PER_SANDBOX else None
        self._per_sandbox = user == PER_SANDBOX and os.geteuid() == 0
        self._provisioned: list[LocalSandbox] = []
        self._real_root: Path | None = None  # where the workspaces are: _root resolved, or a private folder in it
        self._private: Path | None = None  # _real_root, once made private (and reachable by the sandboxes' users)
        self._root_lock = threading.Lock()

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], journal: Path) -> AsyncIterator[WorkerSandboxes]:
        """Workspaces under a root of the run's own, removed at exit: in /tmp, since commands run as users who may
        not pass through the run's folder."""
        root = tempfile.mkdtemp(prefix="harnesslab-hands-")
        try:
            yield worker_sandboxes(options, journal, root=root)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _user_of(self, sandbox_id: str) -> tuple[int, int] | None:
        """Who a sandbox's commands run as: a uid of its own (from its id, so another process attaching to it
        finds the same), a named user, or None: as this process, which cannot switch users or was told not to."""
        if self._per_sandbox:
            uid = PER_SANDBOX_UIDS.start + int(sandbox_id.rpartition("-")[2], 16) % len(PER_SANDBOX_UIDS)
            return uid, uid
        return self._user

    def _identity(self, user: str | None) -> tuple[int, int] | None:
        """(uid, gid) of `user`, if this process may switch to it (it runs as root)."""
        if user is None or os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"sandbox.user {user!r}: no such user on this host; give an existing one, or null") from None
        return entry.pw_uid, entry.pw_gid

    async def provision(self) -> LocalSandbox:
        sandbox = await asyncio.to_thread(self._new_sandbox)  # file system calls: not on the event loop
        try:
            await asyncio.to_thread(self._make_workspace, sandbox)
        except BaseException:
            await sandbox.close()  # its uid claim goes with it
            raise
        self._provisioned.append(sandbox)
        return sandbox

    def _new_sandbox(self) -> LocalSandbox:
        """A sandbox with a new, empty workspace; with a uid per sandbox, one no other live sandbox on this host
        has (its processes are killed by uid, so a shared one would kill another's): claimed, never guessed."""
        while True:
            sandbox = self._sandbox(f"{self.hand}-{uuid.uuid4().hex[:16]}")
            self._make_private(sandbox.root.parent, reachable=sandbox.user is not None)
            sandbox.root.mkdir()
            if not self._per_sandbox or uid_claims.claim(sandbox.user[0], sandbox.root):
                return sandbox
            sandbox.root.rmdir()

    def _make_private(self, folder: Path, reachable: bool) -> None:
        """Make `folder`, where the workspaces go, exist as this user's private folder (once): nobody else may list
        it or write in it. `reachable`: the sandboxes' users may pass through it to their workspaces."""
        if self._private == folder:
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o066:
            raise SandboxError(
                f"sandbox.root: {folder} is not a private folder of uid {os.geteuid()} (owner {info.st_uid}, mode "
                f"{stat.filemode(info.st_mode)}); remove it, or choose another sandbox.root")
        if reachable:
            os.chmod(folder, stat.S_IMODE(info.st_mode) | 0o011)  # search only: the sandboxes cannot list each other
            _check_reachable(folder)
        self._private = folder

    def _make_workspace(self, sandbox: LocalSandbox) -> None:
        if sandbox.user is not None:
            os.chown(sandbox.root, *sandbox.user)
            sandbox.root.chmod(0o700)

    async def attach(self, sandbox_id: str) -> LocalSandbox:
        if not _ID.match(sandbox_id) or not sandbox_id.startswith(f"{self.hand}-"):
            raise SandboxLost(f"{sandbox_id!r} is not a {self.hand} sandbox id")
        sandbox = self._sandbox(sandbox_id)
        if not sandbox.root.is_dir():
            raise SandboxLost(f"sandbox {sandbox_id} is gone (no workspace at {sandbox.root})")
        return sandbox

    async def close(self) -> None:
        for sandbox in [] if self.keep else self._provisioned:
            await sandbox.close()
        self._provisioned.clear()
        if self._owns_root and self._root is not None:
            for name in await asyncio.to_thread(os.listdir, self._root):  # attached ones too: their uids go free
                if _ID.match(name) and name.startswith(f"{self.hand}-"):
                    await self._sandbox(name).close()
            await remove_quietly(self._root)
            self._root = self._real_root = self._private = None

    def _workspaces(self) -> Path:
        """Where the workspaces go, found on first use; under a lock, since the first provisions run in threads at
        once, and each must find the root another made (a workspace under a root then forgotten is lost)."""
        with self._root_lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="harnesslab-local-"))
            if self._real_root is None:
                self._real_root = workspaces_folder(Path(os.path.realpath(self._root)))
            return self._real_root

    def _sandbox(self, sandbox_id: str) -> LocalSandbox:
        sandbox = self.sandbox_class(sandbox_id, self._workspaces() / sandbox_id, user=self._user_of(sandbox_id),
                                     own_user=self._per_sandbox, **self._options)
        sandbox.journal = self.journal
        return sandbox
