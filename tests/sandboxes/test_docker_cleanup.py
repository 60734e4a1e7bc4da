"""Docker cleanup is idempotent and race-safe: a container already gone, or being removed by someone else, or
created for a provision that was cancelled, never fails a cleanup and is never left behind."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from processes.children import PROJECT_ROOT
from sandboxes.docker import LABEL, DockerSandboxProvider, prune
from sandboxes.process import identity_alive, process_identity

pytestmark = pytest.mark.docker


def engine() -> Any:
    import docker

    return docker.from_env().api


def labelled(run_label: str) -> list[dict]:
    """This test's containers, as a fresh client (another process) sees them."""
    api = engine()
    try:
        return api.containers(all=True, filters={"label": f"{LABEL}.provider={run_label}"})
    finally:
        api.close()


class RemovedMeanwhile:
    """The engine's API, except that once a listing is made, another client starts removing the first container
    listed: `finish` waits for that removal to end (the container is gone), otherwise until it is under way."""

    def __init__(self, api: Any, finish: bool):
        self.api, self.finish = api, finish
        self.other = engine()
        self.failures: list[BaseException] = []
        self.removing: threading.Thread | None = None

    def containers(self, **filters: Any) -> list[dict]:
        found = self.api.containers(**filters)
        self.removing = threading.Thread(target=self._remove, args=(found[0]["Id"],))
        self.removing.start()
        if self.finish:
            self.removing.join()
        while self.removing.is_alive() and self._status(found[0]["Id"]) != "removing":
            pass
        return found

    def _remove(self, container_id: str) -> None:
        try:
            self.other.remove_container(container_id, force=True)
        except BaseException as exc:
            self.failures.append(exc)

    def _status(self, container_id: str) -> str:
        import docker

        try:
            return self.other.inspect_container(container_id)["State"]["Status"]
        except docker.errors.NotFound:
            return "gone"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


@pytest.fixture
async def two_containers(docker_image):
    provider = DockerSandboxProvider(image=docker_image)
    await provider.provision()
    await provider.provision()
    yield provider
    await provider.close()


@pytest.mark.parametrize("finish", [True, False], ids=["already-removed", "removal-under-way"])
async def test_prune_removes_every_container_whatever_another_client_is_removing(two_containers, finish):
    api = RemovedMeanwhile(two_containers._api, finish)
    removed = await asyncio.to_thread(prune, api, {f"{LABEL}.provider": two_containers.run_label})
    api.removing.join()
    assert removed == 2 and api.failures == []
    assert labelled(two_containers.run_label) == []  # the one under way was waited for, the other removed


async def test_close_and_sandboxes_closing_at_once_leave_nothing(docker_image):
    provider = DockerSandboxProvider(image=docker_image)
    boxes = await asyncio.gather(*(provider.provision() for _ in range(4)))
    await asyncio.gather(*(box.close() for box in boxes), provider.close(), *(box.close() for box in boxes))
    assert labelled(provider.run_label) == []


class SlowToCreate(DockerSandboxProvider):
    """The engine creates this provider's containers only once close has returned (or after `hold_s`, if close
    waits for them): a creation still under way when the run is cancelled."""

    hold_s = 2.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.creating, self.closed, self.created = threading.Event(), threading.Event(), threading.Event()

    def _create(self, api: Any) -> str:
        self.creating.set()
        self.closed.wait(self.hold_s)
        try:
            return super()._create(api)
        finally:
            self.created.set()

    async def close(self) -> None:
        await super().close()
        self.closed.set()


async def test_close_removes_the_container_of_a_provision_cancelled_while_it_was_created(docker_image):
    provider = SlowToCreate(image=docker_image)
    await provider.start()
    provisioning = asyncio.create_task(provider.provision())
    await asyncio.to_thread(provider.creating.wait)
    provisioning.cancel()
    with pytest.raises(asyncio.CancelledError):
        await provisioning
    await provider.close()
    await asyncio.to_thread(provider.created.wait)
    try:
        assert labelled(provider.run_label) == []
    finally:  # what a failure left behind
        api = engine()
        prune(api, {f"{LABEL}.provider": provider.run_label})
        api.close()


KILLED_RUN = """
import asyncio, sys
from sandboxes.docker import DockerSandboxProvider

async def main():
    provider = DockerSandboxProvider(image=sys.argv[1], run_label=sys.argv[2])
    await asyncio.gather(provider.provision(), provider.provision())
    print("provisioned", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def until(condition, timeout_s: float = 60.0) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_the_containers_of_a_process_killed_by_sigkill_are_removed(docker_image, tmp_path):
    """No cleanup runs in a SIGKILLed process: its provider's reaper, a process of its own, removes its containers."""
    label = f"test-sigkill-{uuid.uuid4().hex[:12]}"
    with open(tmp_path / "stderr", "w") as stderr:
        run = subprocess.Popen([sys.executable, "-c", KILLED_RUN, docker_image, label], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    try:
        assert run.stdout.readline() == "provisioned\n", (tmp_path / "stderr").read_text()[-3000:]
        assert len(labelled(label)) == 2
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        assert until(lambda: not labelled(label)), labelled(label)
    finally:
        if run.poll() is None:
            run.kill()
        run.wait()
        api = engine()
        prune(api, {f"{LABEL}.provider": label})
        api.close()


async def test_kept_containers_have_no_reaper_and_outlive_their_provider(docker_image):
    provider = DockerSandboxProvider(image=docker_image, keep=True)
    sandbox = await provider.provision()
    assert provider._reaper is None
    await provider.close()
    try:
        assert [c["Id"] for c in labelled(provider.run_label)] == [sandbox.id]
    finally:
        api = engine()
        prune(api, {f"{LABEL}.provider": provider.run_label})
        api.close()


async def test_an_orphans_prune_takes_the_containers_of_dead_owners_only(docker_image):
    """`harnesslab sandbox prune` must not take the sandboxes of a run still going (another test suite's, a
    colleague's): a container's OWNER label names the process whose run it belongs to."""
    maker = subprocess.Popen(["sleep", "60"])
    dead_owner = process_identity(maker.pid)
    maker.kill()
    maker.wait()
    run_label = f"orphans-{uuid.uuid4().hex}"
    dead = DockerSandboxProvider(image=docker_image, run_label=run_label, owner=dead_owner)
    live = DockerSandboxProvider(image=docker_image, run_label=run_label)
    try:
        orphan, kept = await dead.provision(), await live.provision()
        api = engine()
        try:
            removed = await asyncio.to_thread(prune, api, {f"{LABEL}.provider": run_label}, orphans_only=True)
        finally:
            api.close()
        assert removed == 1 and [c["Id"] for c in labelled(run_label)] == [kept.id]
        assert await kept.alive() and not await orphan.alive()
    finally:
        await live.close()
        await dead.close()
    assert labelled(run_label) == []


def test_a_process_identity_outlives_no_process_and_names_no_other():
    assert identity_alive(process_identity())
    child = subprocess.Popen(["sleep", "60"])
    identity = process_identity(child.pid)
    assert identity_alive(identity)
    boot, pid, started = identity.split(":")
    assert not identity_alive(f"{boot}:{pid}:{int(started) + 1}")  # the same pid, reused by a later process
    child.kill()
    child.wait()
    assert not identity_alive(identity) and not identity_alive("") and not identity_alive("not:an:identity")
