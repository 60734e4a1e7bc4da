"""A model that repeats a tool_use id (twice in one response, or one an earlier response used) gets a tool error
for it, no call runs under a shared id, the next request holds every id once, and the log keeps its invariants."""
from __future__ import annotations

from experiments.results.invariants import check_session
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.messages import events_to_messages, without_cache_marks
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore
from tests.harnesses.doubles import Responses


def bash(use_id: str, command: str) -> dict:
    return {"type": "tool_use", "id": use_id, "name": "bash", "input": {"command": command}}


def assert_valid_request(messages: list[dict]) -> None:
    """What the Messages API asks of tool ids: each tool_use id once in the request, each answered right after."""
    uses = [b["id"] for m in messages if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]
    assert len(uses) == len(set(uses)), uses
    for asked, answer in zip(messages, messages[1:]):
        if asked["role"] == "assistant":
            ids = sorted(b["id"] for b in asked["content"] if b["type"] == "tool_use")
            assert sorted(b["tool_use_id"] for b in answer["content"] if b["type"] == "tool_result") == ids


async def run(tmp_path, model: Responses) -> tuple[str, list[Event]]:
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await store.create_session({"system": ""})
    await store.append(sid, [Event("user.message", {"text": "go"})], expect=1)
    outcome = await DecoupledHarness(store, model, provider, FullContext()).wake(sid)
    await provider.close()
    assert outcome.status == "completed", outcome
    return sid, await store.events(sid)


def of_type(events: list[Event], kind: str) -> list[dict]:
    return [e.data for e in events if e.type == kind]


async def test_two_calls_sharing_an_id_in_one_response_both_get_one_error_and_neither_runs(tmp_path):
    model = Responses([bash("x", "touch a"), bash("x", "touch b")], [bash("y", "ls")], [{"type": "text", "text": "ok"}])
    sid, events = await run(tmp_path, model)
    assert [c["tool_use_id"] for c in of_type(events, "tool.call")] == ["y"]  # nothing was called under x
    [refused, listed] = of_type(events, "tool.result")
    assert refused["tool_use_id"] == "x" and refused["is_error"]
    assert "is used by 2 tool calls of this response (bash, bash)" in refused["output"]
    assert "must be unique" in refused["output"] and "none of them ran" in refused["output"]
    assert listed["output"].split() == []  # neither touch ran: the workspace is empty
    second = model.requests[1].messages
    assert [b for b in second[-2]["content"] if b["type"] == "tool_use"] == [bash("x", "touch a")]  # shown once
    assert second[-1]["content"][0]["content"] == refused["output"]  # the model reads the error
    for request in model.requests:
        assert_valid_request(request.messages)
    assert check_session(sid, events) == []


async def test_an_id_an_earlier_response_used_is_refused_and_shown_renamed(tmp_path):
    model = Responses([bash("x", "touch a")], [bash("x", "touch b")], [bash("z", "ls")], [{"type": "text", "text": "ok"}])
    sid, events = await run(tmp_path, model)
    assert [c["tool_use_id"] for c in of_type(events, "tool.call")] == ["x", "z"]  # one call per id in the session
    ran, refused, listed = of_type(events, "tool.result")
    assert not ran["is_error"] and refused["tool_use_id"] == "x" and refused["is_error"]
    assert "already used by an earlier tool call in this session, so this call did not run" in refused["output"]
    assert listed["output"].split() == ["a"]  # touch b never ran
    reuse = next(e.position for e in events if e.type == "model.response" and e.data["content"] == [bash("x", "touch b")])
    third = model.requests[2].messages
    assert third[-2]["content"] == [bash(f"x-{reuse}", "touch b")]
    assert third[-1]["content"][0]["tool_use_id"] == f"x-{reuse}" and third[-1]["content"][0]["is_error"]
    for request in model.requests:
        assert_valid_request(request.messages)
    assert check_session(sid, events) == []
    assert events_to_messages(events)[:len(third)] == without_cache_marks(third)  # a function of the log: a stable prefix
