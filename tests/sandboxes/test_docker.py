"""Docker hands: hardened containers, killed for real mid-session, never outliving their run."""
from __future__ import annotations

import asyncio

import pytest

from experiments.runner import run_task
from experiments.tasks import load_suite
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from sandboxes.docker import LABEL, DockerSandboxProvider
from stores.memory import MemoryStore
from tests.experiments.test_cli import harnesslab
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


async def test_prune_removes_leftovers(docker_image, tmp_path):
    provider = DockerSandboxProvider(image=docker_image)
    await provider.provision()  # left behind, as a crashed run would
    done = harnesslab("sandbox", "prune", cwd=tmp_path)
    assert done.returncode == 0 and "removed" in done.stdout and int(done.stdout.split()[1]) >= 1
    await provider.close()


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
