"""A log holding what no harness wrote (bad events, no user message, a gap) ends with session.failed naming the
position and why; the invariant checker reports it; a wake on it afterwards writes nothing."""
from __future__ import annotations

import sqlite3

import pytest

from experiments.results.invariants import check_session
from harnesses.base import ModelError, ModelResponse
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore
from stores.sqlite import SqliteStore

USER = Event("user.message", {"text": "go"})
USE = {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "true"}}


class Uncallable:
    """A model no wake on these logs may reach."""

    name = "uncallable"

    async def respond(self, request):
        raise ModelError("the model was called")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "log.sqlite")
    yield store
    await store.close()


async def session_with(store, *events: Event) -> str:
    sid = await store.create_session({"system": ""})
    if events:
        await store.append(sid, list(events), expect=1)
    return sid


async def wake(store, sid, tmp_path, model=None):
    provider = LocalSandboxProvider(root=str(tmp_path / "hands"))
    try:
        return await DecoupledHarness(store, model or Uncallable(), provider, FullContext()).wake(sid)
    finally:
        await provider.close()


@pytest.mark.parametrize("bad, why", [
    (Event("model.response", {"content": "hello"}), "model.response content must be a list of content blocks, got str 'hello'"),
    (Event("model.response", {"content": None}), "model.response content must be a list of content blocks, got null"),
    (Event("model.response", {"content": {"type": "text", "text": "hi"}}), "model.response content must be a list of content blocks, got dict"),
    (Event("model.response", {"content": [{**USE, "id": ["t1"]}]}), "content block 0 (tool_use) id must be a non-empty string, got list"),
    (Event("tool.result", {"tool_use_id": ["t1"], "output": ""}), "tool.result tool_use_id must be a non-empty string, got list"),
])
async def test_a_malformed_event_fails_the_session_naming_its_position_and_why(store, tmp_path, bad, why):
    sid = await session_with(store, USER, bad)
    outcome = await wake(store, sid, tmp_path)
    reason = f"malformed log: position 2: {why}"
    assert (outcome.status, outcome.reason) == ("failed", reason)
    events = await store.events(sid)
    assert events[-1].type == "session.failed" and events[-1].data["reason"] == reason
    assert (await store.session(sid)).status == "failed"
    assert [(v.rule, v.position, v.detail) for v in check_session(sid, events)] == [("well-formed events", 2, why)]
    again = await wake(store, sid, tmp_path)
    assert (again.status, again.reason) == ("failed", reason) and await store.events(sid) == events  # wrote nothing


async def test_a_call_without_an_id_fails_the_session_and_every_open_call_is_answered(store, tmp_path):
    sid = await session_with(store, USER, Event("model.response", {"content": [USE]}),
                             Event("tool.call", {"tool_use_id": "t1", "name": "bash"}), Event("tool.call", {"name": "bash"}))
    outcome = await wake(store, sid, tmp_path)
    assert outcome.reason == "malformed log: position 4: tool.call tool_use_id is missing"
    events = await store.events(sid)
    assert [(e.type, e.data.get("tool_use_id")) for e in events[5:]] == [("tool.result", "t1"), ("session.failed", None)]
    assert events[5].data["is_error"] and outcome.reason in events[5].data["output"]
    assert [(v.rule, v.position) for v in check_session(sid, events)] == [("well-formed events", 4)]


async def test_a_session_with_no_user_message_fails_naming_where_its_log_ends(store, tmp_path):
    sid = await session_with(store)  # its creator was killed before the first append
    outcome = await wake(store, sid, tmp_path)
    assert outcome.status == "failed" and outcome.reason.startswith("malformed log: position 0: the log ends here without a user.message")
    events = await store.events(sid)
    assert [e.type for e in events] == ["session.created", "session.failed"] and check_session(sid, events) == []


async def test_a_log_with_a_gap_fails_at_the_gap_and_the_failure_lands_after_the_last_position(tmp_path):
    path = tmp_path / "log.sqlite"
    store = SqliteStore(path)
    sid = await session_with(store, USER, Event("harness.woke", {}), Event("model.response", {"content": [USE]}),
                             Event("tool.call", {"tool_use_id": "t1", "name": "bash"}))
    await store.close()
    with sqlite3.connect(path) as db:  # a damaged file: the row at position 2 is gone, the head still says 5 events
        db.execute("DELETE FROM events WHERE position = 2 AND session_key = (SELECT key FROM sessions WHERE id = ?)", (sid,))
    store = SqliteStore(path)
    try:
        outcome = await wake(store, sid, tmp_path)
        assert (outcome.status, outcome.reason) == ("failed", "malformed log: position 2: the store returned position 3 here "
                                                               "(a gap in the log)")
        events = await store.events(sid)
        assert [(e.position, e.type) for e in events[2:]] == [(3, "model.response"), (4, "tool.call"), (5, "tool.result"),
                                                              (6, "session.failed")]
        assert [(v.rule, v.position) for v in check_session(sid, events)] == [("contiguous positions", 3)]
    finally:
        await store.close()


class Answers:
    name = "answers"

    def __init__(self, content):
        self.content = content

    async def respond(self, request):
        return ModelResponse(self.content, "end_turn")


@pytest.mark.parametrize("content", ["hello", None, [{"type": "tool_use", "id": 7, "name": "bash", "input": {}}]])
async def test_a_malformed_response_from_a_model_fails_the_session_and_is_never_logged(tmp_path, content):
    store = MemoryStore()
    sid = await session_with(store, USER)
    outcome = await wake(store, sid, tmp_path, Answers(content))
    assert outcome.status == "failed" and outcome.reason.startswith("ModelError: the model's response is malformed: ")
    events = await store.events(sid)
    assert "model.response" not in [e.type for e in events] and check_session(sid, events) == []
