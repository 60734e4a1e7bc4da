"""Replay and fork of logged sessions: determinism, divergence reports, restored hands, fork points."""
from __future__ import annotations

import pytest

from experiments.replay.fork import ForkError, check_fork_point, load_origin
from experiments.replay.job import ForkRequest, fork_and_run
from experiments.run.job import compose_config, run_job
from experiments.sessions.sources import open_source
from stores.base import Event
from stores.sqlite import SqliteStore

RECORDED = ["store=memory", "model=scripted", "tasks.only=[fix_bug,count_rows]"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A results.duckdb of two smoke sessions, run with the scripted model."""
    folder = tmp_path_factory.mktemp("recorded")
    path = run_job(compose_config(RECORDED), folder, {"model": "scripted"})
    return str(path)


async def session_of(source: str, task: str) -> str:
    store = open_source(source)
    try:
        return next(info.id for info in await store.sessions() if info.meta["task"] == task)
    finally:
        await store.close()


def config(*overrides: str, replay_of: tuple[str, str] | None = None, after: int = 0):
    extra = []
    if replay_of is not None:
        source, session = replay_of
        extra = ["model=replay", f"model.session={session}", f"model.after={after}", f"model.recording.spec='{source}'"]
    return compose_config(["store=memory", *overrides, *extra])


async def replay(source: str, session: str, *overrides: str):
    return await fork_and_run(config(*overrides, replay_of=(source, session)), ForkRequest(source, session))


async def test_replaying_a_session_twice_gives_the_same_event_stream(recording):
    session = await session_of(recording, "fix_bug")
    first, second = await replay(recording, session), await replay(recording, session)
    for result in (first, second):
        assert result.replay and result.divergences == [] and result.record.verdict.success
        assert result.answered == 4 and result.compared == 3
    assert first.record.session_id != second.record.session_id
    assert [e.ts for e in first.events] != [e.ts for e in second.events]
    digests = [r.summary(recording).split("digest: ")[1][:64] for r in (first, second)]
    assert digests[0] == digests[1]
    other = await replay(recording, session, "context=recall")  # what the model saw is part of the stream
    assert other.summary(recording).split("digest: ")[1][:64] != digests[0]


@pytest.mark.parametrize("overrides", [("context=window", "harness=coupled"), ("context=clear_tool_results",)])
async def test_a_replay_under_another_harness_or_context_runs_the_same_tools(recording, overrides):
    session = await session_of(recording, "fix_bug")
    result = await replay(recording, session, *overrides)
    assert result.divergences == [] and result.compared == 3
    assert result.record.outcome.status == "completed" and result.record.verdict.success
    assert "all tests passed" in result.record.verdict.detail  # the task's own check, rebuilt from the run config


async def test_a_replay_under_docker_hands_gives_the_same_results(recording, docker_image):
    session = await session_of(recording, "fix_bug")
    result = await replay(recording, session, "sandbox=docker", f"sandbox.image={docker_image}")
    assert result.divergences == [] and result.record.verdict.success


async def test_the_first_tool_result_that_differs_from_the_log_is_reported(recording, tmp_path):
    session = await session_of(recording, "fix_bug")
    source = open_source(recording)
    events = await source.events(session)
    await source.close()
    tampered = next(e for e in events if e.type == "tool.result" and e.data["name"] == "bash")
    store = SqliteStore(tmp_path / "tampered.sqlite")  # the log as it would be had the tests said otherwise
    copy = await store.create_session(events[0].data)
    changed = [Event(e.type, {**e.data, "output": "1 test failed"} if e is tampered else e.data) for e in events[1:]]
    await store.append(copy, changed, expect=1)
    await store.close()
    result = await replay(str(tmp_path / "tampered.sqlite"), copy)
    [divergence] = result.divergences
    assert (divergence.position, divergence.tool, divergence.input) == (tampered.position, "bash", {"command": "python3 test_calc.py"})
    assert (divergence.expected, divergence.got) == ("1 test failed", "all tests passed\n")
    assert f"first divergence: position {tampered.position} (bash" in result.summary("x")
    assert "not checked: the source keeps no run config" in result.record.verdict.detail  # a store file has no run config


async def test_a_replay_that_stops_early_names_the_results_it_never_got(recording):
    session = await session_of(recording, "fix_bug")
    result = await replay(recording, session, "harness.max_turns=2")
    assert result.record.outcome.status == "failed" and "max_turns" in result.record.outcome.reason
    assert [d.tool for d in result.divergences] == ["bash"]
    assert result.divergences[0].got.startswith("nothing: the replay ended first (failed: max_turns")


async def test_a_fork_keeps_the_prefix_restores_its_sandbox_and_continues_with_another_model(recording):
    session = await session_of(recording, "fix_bug")
    source = open_source(recording)
    origin = await load_origin(source, session[:8])
    await source.close()
    edit = next(e for e in origin.events if e.type == "tool.result" and e.data["name"] == "edit_file")
    at = edit.position + 1  # the fix is made; the emulator takes it from there
    result = await fork_and_run(config("model=emulator"), ForkRequest(recording, session[:8], at))
    assert not result.replay and result.restored == 2 and result.divergences == []  # read_file and edit_file ran again
    forked = result.events
    assert [(e.type, e.data) for e in forked[1:at]] == [(e.type, e.data) for e in origin.events[1:at]]
    assert forked[0].data["forked_from"] == {"session_id": session, "at": at}
    assert forked[at].type == "sandbox.provisioned" and forked[at].data["restored"] == {"from": session, "calls": 2}
    after = [e.data["input"] for e in forked[at:] if e.type == "tool.call"]
    assert after == [{"command": "python3 test_calc.py"}]  # the file was already fixed in the restored sandbox
    assert result.record.verdict.success


async def test_a_fork_with_a_new_message_continues_a_session_that_ended(recording):
    session = await session_of(recording, "count_rows")
    source = open_source(recording)
    origin = await load_origin(source, session)
    await source.close()
    result = await fork_and_run(config("model=scripted"), ForkRequest(recording, session, len(origin.events), "What is 6 times 7?"))
    assert result.events[len(origin.events)].type == "sandbox.provisioned"
    assert result.events[len(origin.events) + 1].data == {"text": "What is 6 times 7?"}
    assert result.record.outcome.status == "completed"


async def test_fork_points_that_cannot_be_used_are_named_with_what_can(recording):
    source = open_source(recording)
    origin = await load_origin(source, await session_of(recording, "fix_bug"))
    await source.close()
    call = next(e for e in origin.events if e.type == "tool.call").position
    with pytest.raises(ForkError, match=rf"falls inside a tool call \(logged at {call}, its result at {call + 2}\); fork at {call} "):
        check_fork_point(origin, call + 1)
    with pytest.raises(ForkError, match="the session has ended there .session.completed.*give --message"):
        check_fork_point(origin, len(origin.events))
    with pytest.raises(ForkError, match=rf"holds positions 0..{len(origin.events) - 1}; fork at 2..{len(origin.events)}"):
        check_fork_point(origin, 1)
    check_fork_point(origin, len(origin.events), message="and now?")
    with pytest.raises(ForkError, match="no session matching 'zzz'"):
        await load_origin(open_source(recording), "zzz")


async def test_a_fork_of_a_credentialed_session_is_granted_its_credentials_and_clones_its_repository_again(tmp_path):
    import asyncio

    recorded = await asyncio.to_thread(  # run_job runs its own event loop
        run_job, compose_config(["store=memory", "model=scripted", "credentials=proxy", "tasks=credentials"]), tmp_path, {})
    session = await session_of(str(recorded), "cloned_version")
    source = open_source(str(recorded))
    origin = await load_origin(source, session)
    await source.close()
    read = next(e for e in origin.events if e.type == "tool.result" and e.data["name"] == "read_file")
    cfg = config("model=scripted", "credentials=proxy")
    result = await fork_and_run(cfg, ForkRequest(str(recorded), session, read.position + 1))
    assert result.restored == 1 and result.divergences == []  # the clone came again through the proxy; read_file agrees
    assert result.record.verdict.success, result.record.verdict.detail
