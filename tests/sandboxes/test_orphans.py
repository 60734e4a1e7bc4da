"""Nothing a run starts outlives it, and nothing it writes is another user's to read.

The credential proxy (holding secrets), its test services, the emulator and a test PostgreSQL die with the process
that started them, however it ends (SIGKILL: no cleanup of its own runs). A run's outputs are its owner's alone,
checked as a real other uid."""
from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from processes.children import PROJECT_ROOT, Child
from sandboxes.local import LocalSandboxProvider
from tests.conftest import require
from tests.experiments.cli.test_cli import HARNESSLAB

PARENT = """
import asyncio, json, sys
from harnesses.models.emulator import EmulatorModel
from sandboxes.credentials.lab import CredentialLab

async def main():
    lab = CredentialLab()
    await lab.start()
    model = EmulatorModel("experiments.tasks.policy_book", serve="process")
    await model.start()  # the emulator's process is started from a worker thread
    pids = {"proxy": lab.proxy_pid, "services": lab._children[0].pid, "emulator": model.child.pid}
    if "postgres" in sys.argv:
        from stores.postgres_server import LocalPostgres

        server = LocalPostgres()
        print(json.dumps({"postgres_root": str(server.root)}), flush=True)
        await asyncio.to_thread(server.start)  # from a worker thread too, as a run's store_restart does
        pids["postgres"] = server.server.pid
    print(json.dumps(pids), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def until(condition, timeout_s: float = 30.0) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start_parent(tmp_path: Path, *options: str) -> tuple[subprocess.Popen, dict]:
    """A parent process that starts the helpers; what it said it started (name -> pid, and a folder to remove)."""
    stderr = open(tmp_path / "parent.stderr", "w")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *options], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              stderr=stderr, text=True, start_new_session=True)
    said: dict = {}
    while "proxy" not in said:
        line = parent.stdout.readline()
        assert line, f"the parent ended before it started its helpers:\n{(tmp_path / 'parent.stderr').read_text()[-3000:]}"
        said.update(json.loads(line))
    return parent, said


def end_parent(parent: subprocess.Popen, said: dict, number: int) -> dict[str, int]:
    """Send the parent `number`, wait for it to end; the helpers still alive after a while."""
    helpers = {name: pid for name, pid in said.items() if isinstance(pid, int)}
    assert all(alive(pid) for pid in helpers.values())
    os.kill(parent.pid, number)
    parent.wait()
    until(lambda: not any(alive(pid) for pid in helpers.values()))
    return {name: pid for name, pid in helpers.items() if alive(pid)}


def kill_left(pids: dict[str, int]) -> None:
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("number", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_the_proxy_its_services_and_the_emulator_die_with_their_parent(tmp_path, number):
    parent, said = start_parent(tmp_path)
    left = end_parent(parent, said, number)
    kill_left(left)
    assert left == {}


@pytest.mark.postgres
def test_a_test_postgres_dies_with_its_parent(tmp_path):
    from stores.postgres_server import PostgresUnavailable, server_bindir

    try:
        server_bindir()
    except PostgresUnavailable as exc:
        require("postgres", str(exc))
    parent, said = start_parent(tmp_path, "postgres")
    try:
        left = end_parent(parent, said, signal.SIGKILL)
        kill_left(left)
        assert left == {}
    finally:
        shutil.rmtree(said.get("postgres_root", tmp_path / "none"), ignore_errors=True)


def test_a_child_started_from_a_thread_that_ends_lives_on_until_stopped():
    """The kernel signals a child when the *thread* that started it ends: a child whose parent lives on ignores it."""
    child = Child("harnesses.emulator.child", {"policies": "experiments.tasks.policy_book", "latency": {}, "faults": {},
                                               "cache_min_tokens": 1024})
    info: dict = {}
    starter = threading.Thread(target=lambda: info.update(child.start()))
    starter.start()
    starter.join()
    try:
        assert until(lambda: not Path(f"/proc/self/task/{starter.native_id}").exists())  # gone: the signal was sent
        assert until(lambda: not pending(child.pid))  # and delivered
        assert answers(info["url"]) and alive(child.pid)
    finally:
        child.stop()
    assert child.process.returncode == 0  # stopped by its parent, not by the signal


def pending(pid: int) -> bool:
    """Whether a signal waits to be delivered to `pid` (gone: none)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return any(int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:")))


def answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (any status)."""
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status > 0
    except OSError:
        return False
    finally:
        connection.close()


async def test_a_runs_outputs_are_private_to_their_owner_and_a_local_sandbox_reads_none(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("local sandboxes run as another uid only when harnesslab runs as root")
    done = subprocess.run([HARNESSLAB, "run", "tasks.only=[greeting]"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = tmp_path / "outputs"
    written = sorted(outputs.rglob("*"))
    assert {"results.duckdb", "sessions.sqlite", "config.yaml"} <= {p.name for p in written}
    assert [p for p in [outputs, *written] if p.stat().st_mode & 0o077] == []  # folders 0700, files 0600
    provider = LocalSandboxProvider(root=str(tmp_path / "hands"))  # its commands run as a uid of their own
    try:
        sandbox = await provider.provision()
        for path in [p for p in written if p.is_file()]:
            read = await sandbox.execute("bash", {"command": f"cat {shlex.quote(str(path))} > /dev/null"})
            assert read.is_error and "Permission denied" in read.output, path
    finally:
        await provider.close()
