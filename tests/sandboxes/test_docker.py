"""Docker hands: hardened containers, killed for real mid-session, never outliving their run."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import struct
import subprocess
import threading

import pytest

from experiments.run.runner import run_task
from experiments.tasks import load_suite
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from sandboxes import docker as docker_module
from sandboxes.base import SandboxLost
from sandboxes.docker import LABEL, DockerSandboxProvider, _Channel
from sandboxes.process import process_identity
from sandboxes.tools import ToolError
from stores.memory import MemoryStore
from tests.experiments.cli.test_cli import harnesslab
from tests.helpers import KillAfter

pytestmark = pytest.mark.docker


@pytest.fixture
async def docker_hands(docker_image):
    provider = DockerSandboxProvider(image=docker_image)
    yield provider
    await provider.close()


async def test_containers_are_hardened(docker_hands):
    sandbox = await docker_hands.provision()
    info = docker_hands._api.inspect_container(sandbox.id)
    host, config = info["HostConfig"], info["Config"]
    assert host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"] and host["PidsLimit"] == 256 and host["Memory"] == 512 * 2**20
    assert config["User"] == "65534:65534" and config["Labels"][LABEL] == "1"
    assert host["LogConfig"]["Config"]["max-size"] == "1m"
    who = await sandbox.execute("bash", {"command": "id -u; cat /proc/self/status | grep CapEff"})
    assert who.output.split()[0] == "65534" and "0000000000000000" in who.output


async def kill_containers(provider) -> None:
    for container in list(provider._channels):
        provider._api.kill(container, signal="SIGKILL")


async def test_a_killed_container_is_a_tool_error_and_the_session_finishes_in_a_new_one(docker_hands):
    store = MemoryStore()
    harness = DecoupledHarness(store, KillAfter(lambda: kill_containers(docker_hands)), docker_hands, FullContext())
    [entry] = load_suite("smoke", only=["fix_bug"])
    record = await run_task(store, harness, docker_hands, *entry)
    assert record.verdict.success, record.verdict.detail
    events = await store.events(record.session_id)
    types = [e.type for e in events]
    assert types.count("sandbox.provisioned") == 2 and types.count("sandbox.lost") == 1
    lost = next(e for e in events if e.type == "tool.result" and e.data["is_error"] and "lost" in e.data["output"])
    assert "a fresh sandbox" in lost.data["output"]


async def test_no_container_outlives_its_provider(docker_image):
    provider = DockerSandboxProvider(image=docker_image)
    await provider.provision()
    await provider.provision()
    api = provider._api
    label = f"{LABEL}.provider={provider.run_label}"
    assert len(api.containers(all=True, filters={"label": label})) == 2
    await provider.close()
    import docker

    client = docker.from_env()
    try:
        assert client.api.containers(all=True, filters={"label": label}) == []
    finally:
        client.close()


async def test_prune_removes_the_leftovers_of_ended_runs_and_spares_those_of_runs_going_on(docker_image, tmp_path):
    ended = subprocess.Popen(["sleep", "60"])  # a run's process, SIGKILLed: its containers are left behind
    owner = process_identity(ended.pid)
    ended.kill()
    ended.wait()
    left = DockerSandboxProvider(image=docker_image, owner=owner)
    going = DockerSandboxProvider(image=docker_image)  # this process's run goes on
    try:
        leftover, running = await left.provision(), await going.provision()
        done = harnesslab("sandbox", "prune", cwd=tmp_path)
        assert done.returncode == 0 and "whose run has ended" in done.stdout and int(done.stdout.split()[1]) >= 1
        assert not await leftover.alive() and await running.alive()
        assert (await running.execute("bash", {"command": "echo still here"})).output.strip() == "still here"
    finally:
        await going.close()
        await left.close()


async def test_kept_hands_outlive_the_brain_that_made_them_and_stale_replies_are_dropped(docker_image):
    first = DockerSandboxProvider(image=docker_image, keep=True)
    sandbox = await first.provision()
    await sandbox.execute("write_file", {"path": "notes.txt", "content": "kept"})
    slow = asyncio.ensure_future(sandbox.execute("bash", {"command": "sleep 0.5; echo stale reply"}))
    await asyncio.sleep(0.2)  # the slow call is running when its brain goes away
    slow.cancel()
    await first.close()  # keep: the attach closes, the container stays
    second = DockerSandboxProvider(image=docker_image)
    try:
        again = await second.attach(sandbox.id)
        result = await again.execute("bash", {"command": "cat notes.txt"})
        assert (result.output.strip(), result.is_error) == ("kept", False)  # its own reply, not the stale one
    finally:
        await second.remove(sandbox.id)
        await second.close()


def open_sockets() -> set[str]:
    """This process's open sockets, as /proc names them (socket:[inode])."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return {name for name in found if name.startswith("socket:")}


@contextlib.contextmanager
def no_garbage_collection():
    """Whatever is closed in here was closed by the code, not by the collector."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def container_exists(api, container_id: str) -> bool:
    import docker

    try:
        api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return True


async def test_closing_a_sandbox_closes_its_attach_socket_at_once(docker_hands):
    with no_garbage_collection():
        sandbox = await docker_hands.provision()
        socket_name = os.readlink(f"/proc/self/fd/{sandbox.channel.sock.fileno()}")
        await sandbox.close()
        assert socket_name not in open_sockets()


@pytest.mark.parametrize("how", ["killed", "hung"])
async def test_a_lost_sandbox_has_its_container_removed_and_its_socket_closed(docker_hands, monkeypatch, how):
    monkeypatch.setattr(docker_module, "_REPLY_GRACE_S", 0.5)  # a hung executor is given up on soon
    with no_garbage_collection():
        sandbox = await docker_hands.provision()
        socket_name = os.readlink(f"/proc/self/fd/{sandbox.channel.sock.fileno()}")
        if how == "killed":
            docker_hands._api.kill(sandbox.id, signal="SIGKILL")
        else:
            docker_hands._api.pause(sandbox.id)  # the executor never answers
        with pytest.raises(SandboxLost):
            await sandbox.execute("bash", {"command": "echo hi", "timeout": 1})
        assert not container_exists(docker_hands._api, sandbox.id)
        assert socket_name not in open_sockets()


async def test_attaching_to_a_sandbox_that_exited_removes_its_container(docker_image, docker_hands):
    first = DockerSandboxProvider(image=docker_image, keep=True)
    sandbox = await first.provision()
    await first.close()  # keep: the container stays, as a dead worker's would
    await docker_hands.start()
    try:
        docker_hands._api.kill(sandbox.id, signal="SIGKILL")
        with pytest.raises(SandboxLost, match="not running"):
            await docker_hands.attach(sandbox.id)
        assert not container_exists(docker_hands._api, sandbox.id)
    finally:
        await docker_hands.remove(sandbox.id)


async def test_a_reply_longer_than_the_limit_fails_that_call_and_the_next_call_works(docker_hands):
    sandbox = await docker_hands.provision()
    docker_hands._channels[sandbox.id].max_line = 4096
    flooded = await sandbox.execute("bash", {"command": "head -c 20000 /dev/zero | tr '\\0' x"})
    assert flooded.is_error and "longer than 4096 bytes" in flooded.output
    after = await sandbox.execute("bash", {"command": "echo still here"})
    assert (after.output.strip(), after.is_error) == ("still here", False)


class PeakChannel(_Channel):
    """A channel that records the most stdout it ever held."""

    peak = 0

    def _unframe(self, data: bytes) -> None:
        super()._unframe(data)
        self.peak = max(self.peak, len(self.stdout))


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


async def test_an_executor_flooding_its_stream_fails_one_call_in_bounded_memory():
    """32 MiB on one line (in frames split across reads, with stderr between) against a 1 MiB limit: the call fails,
    the channel never holds much more than the limit, and the reply after the flood is read."""
    ours, executor = socket.socketpair()
    limit = 1 << 20

    def flood() -> None:
        chunk = frame(1, b"x" * 65_000) + frame(2, b"noise")
        with contextlib.suppress(OSError):  # the channel closed early: the test failed, stop writing
            for _ in range(32 * (1 << 20) // 65_000):
                executor.sendall(chunk)
            executor.sendall(frame(1, b'\n{"id": "next", "output": "ok", "is_error": false}\n'))

    channel = PeakChannel(ours, limit)
    writer = threading.Thread(target=flood)
    writer.start()
    try:
        with pytest.raises(ToolError, match="longer than"):
            await channel.line()
        assert (await channel.reply("next"))["output"] == "ok"
    finally:
        channel.close()
        executor.close()
        await asyncio.to_thread(writer.join)
    assert channel.peak <= limit + (1 << 17) and len(channel.stderr) <= 4096


async def test_every_line_but_the_reply_is_dropped():
    """What a command can write into the stream through docker-init (PID 1): lines that are not JSON, JSON that is
    not an object or carries another id, bytes without a newline before the executor's next reply."""
    ours, executor = socket.socketpair()
    channel = _Channel(ours, 1 << 20)
    try:
        junk = b'not json\n[1]\n{}\n{"id": "stale", "output": "no", "is_error": false}\nunterminated'
        executor.sendall(frame(1, junk) + frame(1, b'\n{"id": "wanted", "output": "ok", "is_error": false}\n'))
        assert await asyncio.wait_for(channel.reply("wanted"), 10) == {"id": "wanted", "output": "ok", "is_error": False}
    finally:
        channel.close()
        executor.close()
