"""Self-hosted environments through the official SDK: its own EnvironmentWorker, in a folder of its own, is the hands
of a session that fixes a failing test; a worker SIGKILLed in the middle of a call loses its lease, and a second
one reclaims the work and finishes it; the queue outlives its server; a bad environment key is a 401."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import pytest
from anthropic.types.beta.environments import BetaHeartbeatPreconditionFailedError

from experiments.results.invariants import check_session
from experiments.tasks import load_suite
from stores.events import ToolCall, ToolResult, WorkPolled
from tests.managed.conftest import ENVIRONMENT_KEY, serve_in_thread
from tests.managed.helpers import TOOLSET, prompt, turn, turn_ended, user_message
from tests.managed.worker_process import HANGING

FIX_BUG = next(task for _, _, task in load_suite("smoke") if task.name == "fix_bug")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_leases(tmp_path):
    """A server whose leases last 2 s, so that a dead worker's runs out within the test."""
    yield from serve_in_thread([f"store.path={tmp_path}/serve.sqlite", "serve.lease_ttl_s=2"])


def failing_test_folder(tmp_path: Path) -> Path:
    """The worker's folder: fix_bug's files, its test failing."""
    folder = tmp_path / "worker"
    for path, content in FIX_BUG.files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(content)
    assert _tests_pass(folder) is False
    return folder


def _tests_pass(folder: Path) -> bool:
    return subprocess.run([sys.executable, "test_calc.py"], cwd=folder, capture_output=True).returncode == 0


def self_hosted_session(client: anthropic.Anthropic) -> tuple[str, str]:
    agent = client.beta.agents.create(name="fixer", model="claude-sonnet-4-6", tools=TOOLSET)
    environment = client.beta.environments.create(name="my machine", config={"type": "self_hosted"})
    assert environment.config.type == "self_hosted"
    return environment.id, client.beta.sessions.create(agent=agent.id, environment_id=environment.id).id


def work_client(api) -> anthropic.Anthropic:
    """A client of the work queue, authenticated as a worker: the environment key as a Bearer token."""
    return anthropic.Anthropic(base_url=api.url, auth_token=ENVIRONMENT_KEY, api_key=None, max_retries=0,
                               _strict_response_validation=True)


async def test_the_sdks_worker_is_the_hands_of_a_session_that_fixes_a_failing_test(api, tmp_path):
    folder = failing_test_folder(tmp_path)
    environment_id, session_id = await asyncio.to_thread(self_hosted_session, api.client())
    worker = api.async_client().beta.environments.work.worker(
        environment_id=environment_id, environment_key=ENVIRONMENT_KEY, workdir=folder, max_idle=0.5)
    running = asyncio.create_task(worker.run())
    try:
        streamed = await asyncio.to_thread(turn, api.client(), session_id, prompt("fix_bug"))
        assert streamed[-1].stop_reason.type == "end_turn", [event.type for event in streamed]
        assert _tests_pass(folder) and "return a + b" in (folder / "calc.py").read_text()  # the worker's folder, fixed
        work = work_client(api).beta.environments.work
        await _until(lambda: [item.state for item in work.list(environment_id)] == ["stopped"])  # idle: the worker let go
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    uses = [event for event in streamed if event.type == "agent.tool_use"]
    assert [use.name for use in uses] == ["read", "edit", "bash"]
    for use in uses:  # each call idles the session on it, the worker answers it, and the session runs again
        after = [event for event in streamed[streamed.index(use) + 1:] if event.type != "span.model_request_end"]
        assert after[0].type == "session.status_idle" and after[0].stop_reason.event_ids == [use.id]
        assert (after[1].type, after[1].tool_use_id, after[2].type) == ("user.tool_result", use.id, "session.status_running")
    assert not any(event.type == "agent.tool_result" for event in streamed)  # nothing ran on the server
    log = api.run(api.parts.store.events(session_id))
    assert {call.hand for call in ToolCall.all_in(log)} == {"self_hosted"} and check_session(session_id, log) == []
    results = [event for event in streamed if event.type == "user.tool_result"]
    assert [r.output for r in ToolResult.all_in(log)] == [r.content[0].text for r in results]
    assert "all tests passed" in results[-1].content[0].text
    listed = list(api.client().beta.sessions.events.list(session_id, limit=1000))
    assert [e.id for e in listed] == [e.id for e in streamed]  # the history is what was streamed


def test_a_worker_killed_mid_call_loses_its_lease_and_another_reclaims_the_work_and_finishes(short_leases, tmp_path):
    api = short_leases
    folder = failing_test_folder(tmp_path)
    client = api.client()
    environment_id, session_id = self_hosted_session(client)
    first = _worker(api, environment_id, folder, tmp_path / "first.log", "--hang-edit")
    second = None
    try:
        with client.beta.sessions.events.stream(session_id) as stream:
            client.beta.sessions.events.send(session_id, events=[user_message(prompt("fix_bug"))])
            streamed = []
            for event in stream:
                streamed.append(event)
                if event.type == "agent.tool_use" and event.name == "edit":
                    _until_sync(lambda: (folder / HANGING).exists())  # the first worker is inside the edit
                    first.send_signal(signal.SIGKILL)
                    assert first.wait(timeout=10) == -signal.SIGKILL
                    assert "return a - b" in (folder / "calc.py").read_text()  # it died before editing
                    second = _worker(api, environment_id, folder, tmp_path / "second.log")
                if turn_ended(event):
                    break
        assert streamed[-1].stop_reason.type == "end_turn", (tmp_path / "second.log").read_text()[-3000:]
        assert _tests_pass(folder)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)

    polls = WorkPolled.all_in(api.run(api.parts.store.events(environment_id)))
    assert len({poll.work_id for poll in polls}) == 1 and len(polls) == 2  # one item, claimed twice
    assert polls[1].reclaimed == "its lease expired" and polls[0].worker_id != polls[1].worker_id
    names = [event.name for event in streamed if event.type == "agent.tool_use"]
    assert names == ["read", "edit", "bash"]  # the second worker ran the edit the first never finished


def test_the_queue_hands_work_out_once_reclaims_it_and_stops_it(short_leases):
    api = short_leases
    environment_id, session_id = self_hosted_session(api.client())
    work = work_client(api).beta.environments.work
    assert work.poll(environment_id) is None and work.stats(environment_id).depth == 0
    api.client().beta.sessions.events.send(session_id, events=[user_message(prompt("fix_bug"))])
    _until_sync(lambda: work.stats(environment_id).depth == 1)  # the brain called a tool: work for the session
    assert api.client().beta.sessions.retrieve(session_id).status == "idle"  # waiting for its worker

    item = work.poll(environment_id, block_ms=500, anthropic_worker_id="w1")
    assert (item.data.id, item.state) == (session_id, "queued")
    stats = work.stats(environment_id)
    assert (stats.depth, stats.pending) == (0, 1)
    assert work.poll(environment_id) is None  # handed out, not acknowledged yet
    time.sleep(0.05)
    assert work.poll(environment_id, reclaim_older_than_ms=10).id == item.id  # not acknowledged in time: again

    assert work.ack(item.id, environment_id=environment_id).state == "starting"
    with pytest.raises(anthropic.ConflictError, match="only an item a poll handed out"):
        work.ack(item.id, environment_id=environment_id)
    beat = work.heartbeat(item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT")
    assert (beat.lease_extended, beat.state, beat.ttl_seconds) == (True, "active", 2)
    with pytest.raises(BetaHeartbeatPreconditionFailedError) as lost:
        work.heartbeat(item.id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT")
    assert lost.value.details.current_state.last_heartbeat == beat.last_heartbeat
    assert work.heartbeat(item.id, environment_id=environment_id, expected_last_heartbeat=beat.last_heartbeat).lease_extended

    assert work.stop(item.id, environment_id=environment_id).state == "stopping"
    told = work.heartbeat(item.id, environment_id=environment_id, expected_last_heartbeat="anything")
    assert (told.lease_extended, told.state) == (False, "stopping")  # the worker is to stop
    assert work.stop(item.id, environment_id=environment_id, force=True).stopped_at is not None
    with pytest.raises(anthropic.ConflictError, match="already stopped"):
        work.stop(item.id, environment_id=environment_id, force=True)

    _until_sync(lambda: work.stats(environment_id).depth == 1)  # the session still waits: new work is queued for it
    again = work.poll(environment_id)
    assert again.id != item.id and again.data.id == session_id
    work.ack(again.id, environment_id=environment_id)
    time.sleep(2.2)  # no heartbeat within the lease's 2 s
    assert work.retrieve(again.id, environment_id=environment_id).state == "queued"  # the lease expired: queued again
    assert [i.id for i in work.list(environment_id, limit=1)] == [again.id, item.id]  # newest first, paged


def test_the_queue_outlives_its_server_and_a_result_wakes_the_session(tmp_path):
    parts = [f"store.path={tmp_path}/serve.sqlite"]
    first = serve_in_thread(parts)
    api = next(first)
    folder = failing_test_folder(tmp_path)
    environment_id, session_id = self_hosted_session(api.client())
    api.client().beta.sessions.events.send(session_id, events=[user_message(prompt("fix_bug"))])
    _until_sync(lambda: work_client(api).beta.environments.work.stats(environment_id).depth == 1)
    first.close()  # the brain waits for a worker that has not come: the log is all that is left

    second = serve_in_thread(parts)
    api = next(second)
    worker = _worker(api, environment_id, folder, tmp_path / "worker.log")
    try:
        client = api.client()
        _until_sync(lambda: client.beta.sessions.retrieve(session_id).status == "idle" and any(
            turn_ended(e) for e in client.beta.sessions.events.list(session_id, limit=1000)), timeout=60)
        ended = [e for e in client.beta.sessions.events.list(session_id, limit=1000) if turn_ended(e)]
        assert ended[-1].stop_reason.type == "end_turn" and _tests_pass(folder)
    finally:
        worker.kill()
        worker.wait(timeout=10)
        second.close()


def test_another_server_on_the_store_serves_the_queue_a_session_of_the_first_filled(tmp_path):
    parts = [f"store.path={tmp_path}/serve.sqlite"]
    first, second = serve_in_thread(parts), serve_in_thread(parts)
    one, other = next(first), next(second)
    folder = failing_test_folder(tmp_path)
    environment_id, session_id = self_hosted_session(one.client())
    worker = _worker(other, environment_id, folder, tmp_path / "worker.log")  # the worker knows only the other server
    try:
        streamed = turn(one.client(), session_id, prompt("fix_bug"))
        assert streamed[-1].stop_reason.type == "end_turn" and _tests_pass(folder)
    finally:
        worker.kill()
        worker.wait(timeout=10)
        second.close()
        first.close()
    assert [e.type for e in streamed].count("user.tool_result") == 3


async def test_a_bad_environment_key_is_a_401(api, tmp_path):
    environment_id, _ = await asyncio.to_thread(self_hosted_session, api.client())
    worker = api.async_client().beta.environments.work.worker(
        environment_id=environment_id, environment_key="envkey_wrong", workdir=tmp_path)
    with pytest.raises(anthropic.AuthenticationError, match="invalid environment key"):
        await asyncio.wait_for(worker.run(), timeout=30)
    with pytest.raises(anthropic.AuthenticationError):  # an API key does not open a work queue
        api.client().beta.environments.work.stats(environment_id)
    cloud = api.client().beta.environments.create(name="cloud")
    with pytest.raises(anthropic.BadRequestError, match="is a cloud environment"):
        work_client(api).beta.environments.work.poll(cloud.id)
    with pytest.raises(anthropic.BadRequestError, match="block_ms: expected a whole number from 1 to 999"):
        work_client(api).beta.environments.work.poll(environment_id, block_ms=0)


def _worker(api, environment_id: str, folder: Path, log: Path, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.managed.worker_process", api.url, environment_id, ENVIRONMENT_KEY, str(folder), *flags]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


async def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def _until_sync(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
