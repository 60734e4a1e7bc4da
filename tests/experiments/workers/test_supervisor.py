"""The supervisor and its fork server: workers forked from one that imported their modules, restarted when
killed, given up on when they cannot go on, and ended with the supervisor's process however it ends."""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.workers.fork_server import Forked, ForkServer, ForkServerLost
from experiments.paths import PROJECT_ROOT
from experiments.workers.supervisor import Supervisor, WorkerFailed
from tests.sandboxes.test_orphans import alive, until

TOY = "tests.experiments.workers.toy_worker"


def toy(behaviours: dict[int, str] | str, python: str = sys.executable):
    """A worker command: incarnation n of a slot behaves as `behaviours[n]` (the last one after that)."""
    def command(slot: str, incarnation: int) -> list[str]:
        said = behaviours if isinstance(behaviours, str) else behaviours.get(incarnation, behaviours[max(behaviours)])
        return [python, "-m", TOY, slot, said]
    return command


def started(log: Path) -> list[dict[str, int]]:
    """Each start the toy worker wrote to its slot's log: its pid, its parent's, whether it had `decimal`."""
    lines = [line.split() for line in log.read_text().splitlines() if line.startswith("pid ")]
    return [{"pid": int(w[1]), "parent": int(w[3]), "decimal": w[5] == "1"} for w in lines]


async def test_workers_are_forked_from_the_fork_server_with_its_imports(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    supervisor = Supervisor(toy("exits"), 2, tmp_path, preload=["experiments.workers.supervisor", "json", "decimal"])
    await supervisor.start()
    await supervisor.wait(timeout=60)
    await supervisor.stop()
    server = supervisor.fork_server.process.pid
    for slot in ("w0", "w1"):
        [start] = started(tmp_path / f"{slot}.log")
        assert start["parent"] == server and start["decimal"]  # forked, with what the server imported
    assert supervisor.fork_server.process.returncode == 0
    assert len(supervisor.readies) == 2


async def test_a_killed_forked_worker_is_restarted_and_its_kill_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    supervisor = Supervisor(toy({0: "sleeps", 1: "exits"}), 1, tmp_path, preload=["experiments.workers.supervisor"])
    await supervisor.start()
    try:
        while not supervisor.readies:
            await asyncio.sleep(0.02)
        kill = supervisor.kill_one(random.Random(0), min_ready_s=0)
        await supervisor.wait(timeout=60)
    finally:
        await supervisor.stop()
    first, second = started(tmp_path / "w0.log")
    assert kill.pid == first["pid"] and not alive(first["pid"])
    assert second["parent"] == supervisor.fork_server.process.pid and len(supervisor.readies) == 2


async def test_a_command_the_server_cannot_fork_starts_as_a_program(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    other_python = str(Path(sys.executable).with_name("python3"))  # the same interpreter by another name: not `python -m`
    supervisor = Supervisor(toy("exits", python=other_python), 1, tmp_path, preload=["decimal"])
    await supervisor.start()
    await supervisor.wait(timeout=60)
    await supervisor.stop()
    [start] = started(tmp_path / "w0.log")
    assert start["parent"] == os.getpid() and not start["decimal"]


@pytest.mark.parametrize("preload", [["json"], []], ids=["forked", "program"])
async def test_a_worker_that_cannot_go_on_is_not_restarted(tmp_path, monkeypatch, preload):
    monkeypatch.chdir(PROJECT_ROOT)
    supervisor = Supervisor(toy("cannot-go-on"), 1, tmp_path, preload=preload)
    await supervisor.start()
    with pytest.raises(WorkerFailed, match="w0 said it cannot go on"):
        await supervisor.wait(timeout=60)
    await supervisor.stop()
    assert len(started(tmp_path / "w0.log")) == 1


async def test_a_worker_whose_fork_server_dies_is_killed_and_fails_its_slot(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    supervisor = Supervisor(toy("sleeps"), 1, tmp_path, preload=["json"])
    await supervisor.start()
    try:
        while not supervisor.readies:
            await asyncio.sleep(0.02)
        [start] = started(tmp_path / "w0.log")
        os.kill(supervisor.fork_server.process.pid, signal.SIGKILL)
        with pytest.raises(ForkServerLost, match="the fork server died"):
            await supervisor.wait(timeout=60)
    finally:
        await supervisor.stop()
    assert until(lambda: not alive(start["pid"]))


async def test_a_dead_servers_workers_are_killed_by_pidfd_never_a_process_that_took_a_pid_number(tmp_path):
    """A worker that exited while the server died was never reported: its pid number may name another process by
    then, which a kill by number would reach."""
    server = ForkServer([], tmp_path / "fork.log")
    (tmp_path / "fork.log").write_text("")
    worker, bystander = subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "60"])
    try:
        forked = Forked(worker.pid)  # as the server's answer makes it
        worker.kill()
        worker.wait()  # it ended unseen, and the number the server told now names the bystander
        server._running[bystander.pid] = forked
        server._lost(-9)
        with pytest.raises(ForkServerLost, match=f"while worker pid {worker.pid} ran"):
            await forked.wait()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("preload", [["json"], []], ids=["forked", "programs"])
async def test_a_ctrl_c_while_a_worker_starts_leaves_no_worker_running(tmp_path, monkeypatch, preload):
    """A Ctrl-C cancels the supervisor's watchers wherever they are, in a worker's start too: stop() still ends every
    worker (a worker forked for a cancelled start was left running, and the run waited for it forever)."""
    monkeypatch.chdir(PROJECT_ROOT)
    supervisor = Supervisor(toy("sleeps"), 1, tmp_path, preload=preload)
    spawn, waiting = supervisor._spawn, None

    async def ctrl_c_during_start(command, log):
        waiting.cancel()  # what asyncio.run does to the run on a Ctrl-C; it lands inside the start below
        return await spawn(command, log)

    monkeypatch.setattr(supervisor, "_spawn", ctrl_c_during_start)
    await supervisor.start()
    waiting = asyncio.create_task(supervisor.wait(timeout=60))
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(supervisor.stop(), timeout=30)
    await asyncio.sleep(1.5)  # time for a worker left running to write its pid
    pids = [start["pid"] for start in started(tmp_path / "w0.log")]
    assert not [pid for pid in pids if not until(lambda pid=pid: not alive(pid), 10)]


DRIVER = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from experiments.workers.supervisor import Supervisor
    from tests.experiments.workers.test_supervisor import toy

    async def main():
        supervisor = Supervisor(toy("sleeps"), 2, Path(sys.argv[1]), preload=json.loads(sys.argv[2]))
        await supervisor.start()
        while len(supervisor.readies) < 2:
            await asyncio.sleep(0.02)
        server = supervisor.fork_server.process.pid if supervisor.fork_server else None
        print(json.dumps({"workers": [s.process.pid for s in supervisor.slots.values()], "server": server}), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")


@pytest.mark.parametrize("preload", [["json"], []], ids=["forked", "programs"])
@pytest.mark.parametrize("number", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_workers_end_with_the_supervisors_process(tmp_path, preload, number):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), json.dumps(preload)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = json.loads(driver.stdout.readline() or "null") or pytest.fail(driver.stderr.read()[-2000:])
    finally:
        driver.send_signal(number)
        driver.wait(timeout=30)
    left = [pid for pid in [*said["workers"], said["server"]] if pid and not until(lambda pid=pid: not alive(pid), 15)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
