"""A session driven through the official SDK only: a streamed turn with tool calls to idle, a second turn, the
history equal to what was streamed, a stream reconnected mid-turn, the smoke tasks solved through the API."""
from __future__ import annotations

import asyncio

import pytest

from experiments.run.runner import check
from experiments.tasks import load_suite
from harnesses.base import Outcome
from harnesses.hands import live_sandbox_id
from sandboxes.base import Setup
from tests.managed.helpers import new_session, prompt, turn, user_message


def dumped(events) -> list[dict]:
    return [event.model_dump(mode="json") for event in events]


def test_a_turn_runs_the_toolset_to_idle_and_a_second_turn_follows(api):
    client = api.client()
    session_id = new_session(client, "fix_bug")
    assert client.beta.sessions.retrieve(session_id).status == "idle"

    first = turn(client, session_id, prompt("fix_bug"))
    kinds = [event.type for event in first]
    assert kinds[:2] == ["user.message", "session.status_running"] and kinds[-1] == "session.status_idle"
    assert first[-1].stop_reason.type == "end_turn"
    uses = [event for event in first if event.type == "agent.tool_use"]
    assert [use.name for use in uses] == ["read", "edit", "bash"]
    assert uses[0].input == {"file_path": "calc.py"}
    results = {event.tool_use_id: event for event in first if event.type == "agent.tool_result"}
    assert set(results) == {use.id for use in uses}  # each result names its tool_use event
    assert results[uses[2].id].content[0].text == "all tests passed\n" and not results[uses[2].id].is_error
    ends = [event for event in first if event.type == "span.model_request_end"]
    starts = [event.id for event in first if event.type == "span.model_request_start"]
    assert [end.model_request_start_id for end in ends] == starts and all(end.model_usage.input_tokens > 0 for end in ends)

    second = turn(client, session_id, "Thanks. Anything else?")
    assert [event.type for event in second][:2] == ["user.message", "session.status_running"]
    assert second[-1].type == "session.status_idle" and any(event.type == "agent.message" for event in second)

    listed = list(client.beta.sessions.events.list(session_id, limit=4))  # four per page: the pager pages over the log
    assert dumped(listed) == dumped(first + second)
    assert len({event.id for event in listed}) == len(listed)
    session = client.beta.sessions.retrieve(session_id)
    assert session.status == "idle" and session.usage.input_tokens == sum(e.model_usage.input_tokens for e in ends) + sum(
        e.model_usage.input_tokens for e in second if e.type == "span.model_request_end")


def test_events_list_filters_by_type_and_orders_newest_first(api):
    client = api.client()
    session_id = new_session(client, "greeting")
    streamed = turn(client, session_id, prompt("greeting"))
    newest_first = list(client.beta.sessions.events.list(session_id, order="desc", limit=2))
    assert dumped(newest_first) == dumped(streamed[::-1])
    uses = list(client.beta.sessions.events.list(session_id, types=["agent.tool_use"]))
    assert [(use.name, use.input["file_path"]) for use in uses] == [("write", "hello.txt")]


async def test_a_stream_reconnected_mid_turn_neither_misses_nor_repeats_an_event(api):
    client = api.async_client()
    session_id = await asyncio.to_thread(new_session, api.client(), "find_needle")  # 25 model calls: a long turn
    before = []
    async with await client.beta.sessions.events.stream(session_id) as stream:
        await client.beta.sessions.events.send(session_id, events=[user_message(prompt("find_needle"))])
        async for event in stream:
            before.append(event)
            if sum(e.type == "agent.tool_result" for e in before) == 3:
                break
    assert (await client.beta.sessions.retrieve(session_id)).status == "running"  # cut mid-turn

    after = []  # SSE's own resumption: the id of the last event read
    resumed = await client.beta.sessions.events.stream(session_id, extra_headers={"Last-Event-ID": before[-1].id})
    async with resumed as stream:
        async for event in stream:
            after.append(event)
            if event.type == "session.status_idle":
                break
    listed = [event async for event in await client.beta.sessions.events.list(session_id, limit=100)]
    assert dumped(before + after) == dumped(listed)
    assert sum(e.type == "agent.tool_use" for e in listed) == 24


async def test_the_sdks_reconnection_stream_then_history_covers_every_event_once(api):
    """What the SDK's session runner does: open the stream, list the history, drop what both gave by id."""
    client = api.async_client()
    session_id = await asyncio.to_thread(new_session, api.client(), "find_needle")
    await client.beta.sessions.events.send(session_id, events=[user_message(prompt("find_needle"))])
    await asyncio.sleep(0.3)  # mid-turn
    seen, order = set(), []
    async with await client.beta.sessions.events.stream(session_id) as stream:
        async for event in await client.beta.sessions.events.list(session_id, limit=1000):
            seen.add(event.id)
            order.append(event.id)
        assert event.type != "session.status_idle"  # else the stream would wait for a turn that has ended
        async for event in stream:
            if event.id not in seen:
                seen.add(event.id)
                order.append(event.id)
            if event.type == "session.status_idle":
                break
    listed = [event.id async for event in await client.beta.sessions.events.list(session_id, limit=1000)]
    assert order == listed


def test_a_failed_turn_is_a_session_error_then_idle_and_the_next_message_reopens_it(failing_api):
    client = failing_api.client()
    session_id = new_session(client, "fix_bug")
    failed = turn(client, session_id, prompt("fix_bug"))  # harness.max_turns=1: one model call per turn at most
    error, idle = failed[-2:]
    assert error.type == "session.error" and error.error.type == "unknown_error" and "max_turns" in error.error.message
    assert error.error.retry_status.type == "exhausted" and idle.stop_reason.type == "retries_exhausted"
    again = turn(client, session_id, "try again")
    assert [e.type for e in again][:2] == ["user.message", "session.status_running"]


SMOKE = [task.name for _, _, task in load_suite("smoke")]


@pytest.mark.parametrize("task_name", SMOKE)
def test_the_emulated_brain_solves_each_smoke_task_through_the_toolset(api, task_name):
    client = api.client()
    session_id = new_session(client, task_name)
    streamed = turn(client, session_id, prompt(task_name))
    assert streamed[-1].stop_reason.type == "end_turn", [event.type for event in streamed]
    replies = [block.text for event in streamed if event.type == "agent.message" for block in event.content]
    log = api.run(api.parts.store.events(session_id))
    task = next(t for _, _, t in load_suite("smoke") if t.name == task_name)
    outcome = Outcome(session_id, "completed", final_text=replies[-1], sandbox_id=live_sandbox_id(log))
    verdict = api.run(check(task, outcome, api.parts.sandboxes.inner, Setup.from_meta(log[0].data["setup"])))
    assert verdict.success, verdict.detail


async def test_concurrent_sessions_each_stream_their_own_turn(api):
    client = api.async_client()

    async def one(task_name: str) -> list:
        session_id = await asyncio.to_thread(new_session, api.client(), task_name)
        events = []
        async with await client.beta.sessions.events.stream(session_id) as stream:
            await client.beta.sessions.events.send(session_id, events=[user_message(prompt(task_name))])
            async for event in stream:
                events.append(event)
                if event.type == "session.status_idle":
                    return events

    names = ["greeting", "fix_bug", "count_rows", "edit_json", "sort_unique", "rename_function"] * 2
    turns = await asyncio.gather(*(one(name) for name in names))
    assert all(events[-1].stop_reason.type == "end_turn" for events in turns)
    streamed_from = [{event.id.split("_")[1] for event in events} for events in turns]
    assert all(len(one_session) == 1 for one_session in streamed_from)  # each stream carried its own session's events
    assert len(set.union(*streamed_from)) == len(names)


def test_a_message_sent_mid_turn_joins_the_running_turn(api):
    client = api.client()
    session_id = new_session(client, "find_needle")
    streamed, sent = [], False
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(session_id, events=[user_message(prompt("find_needle"))])
        for event in stream:
            streamed.append(event)
            if event.type == "agent.tool_result" and not sent:
                client.beta.sessions.events.send(session_id, events=[user_message("Please hurry.")])
                sent = True
            if event.type == "session.status_idle":
                break
    kinds = [event.type for event in streamed]
    assert kinds.count("user.message") == 2 and kinds.count("session.status_running") == 1  # one turn, woken again
    assert streamed[-1].stop_reason.type == "end_turn"
    assert dumped(streamed) == dumped(client.beta.sessions.events.list(session_id, limit=1000))
