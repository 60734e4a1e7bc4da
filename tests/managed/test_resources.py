"""Agents, environments and sessions through the official SDK: versions, pagination, metadata, deletion, and the
API's error shapes (400 naming the field, 401, 404 for an unknown id, 409)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import anthropic
import pytest

from tests.managed.helpers import TOOLSET, new_session, prompt, turn


def test_an_agent_update_makes_a_version_and_every_version_stays_readable(api):
    client = api.client()
    agent = client.beta.agents.create(name="v", model="claude-sonnet-4-6", system="first", tools=TOOLSET,
                                      metadata={"team": "lab"})
    assert agent.version == 1 and agent.id.startswith("agent_")
    assert [(c.name, c.enabled, c.permission_policy.type) for c in agent.tools[0].configs][:2] == [
        ("bash", True, "always_allow"), ("read", True, "always_allow")]
    updated = client.beta.agents.update(agent.id, version=1, system="second", metadata={"team": None, "owner": "me"})
    assert (updated.version, updated.system, updated.metadata) == (2, "second", {"owner": "me"})
    assert client.beta.agents.update(agent.id, system="second").version == 2  # no change, no new version
    assert client.beta.agents.retrieve(agent.id, version=1).system == "first"
    assert [v.version for v in client.beta.agents.versions.list(agent.id)] == [2, 1]
    with pytest.raises(anthropic.ConflictError, match="at version 2"):
        client.beta.agents.update(agent.id, version=1, system="third")


def test_lists_page_as_the_sdk_pagers_expect(api):
    client = api.client()
    made = [client.beta.agents.create(name=f"a{i}", model="claude-sonnet-4-6").id for i in range(5)]
    first = client.beta.agents.list(limit=2)
    assert [a.id for a in first.data] == made[::-1][:2] and first.has_next_page()
    assert [a.id for a in client.beta.agents.list(limit=2)] == made[::-1]  # auto-pagination over three pages
    environments = [client.beta.environments.create(name=f"e{i}").id for i in range(3)]
    assert [e.id for e in client.beta.environments.list(limit=1)] == environments[::-1]


def test_a_session_keeps_its_agent_version_metadata_and_status_and_is_deleted(api):
    client = api.client()
    session_id = new_session(client, "greeting", system="v1")
    session = client.beta.sessions.retrieve(session_id)
    agent_id = session.agent.id
    client.beta.agents.update(agent_id, system="v2")
    assert client.beta.sessions.retrieve(session_id).agent.system == "v1"  # a snapshot of the version it runs
    updated = client.beta.sessions.update(session_id, metadata={"run": "7"}, title="greeting")
    assert updated.metadata == {"harnesslab_task": "greeting", "run": "7"} and updated.title == "greeting"
    turn(client, session_id, prompt("greeting"))
    listed = client.beta.sessions.list(agent_id=agent_id, statuses=["idle"])
    assert [s.id for s in listed] == [session_id]
    assert client.beta.sessions.list(statuses=["running"]).data == []
    deleted = client.beta.sessions.delete(session_id)
    assert (deleted.id, deleted.type) == (session_id, "session_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(session_id)
    assert client.beta.sessions.list().data == []


def test_initial_events_start_the_first_turn_at_creation(api):
    client = api.client()
    agent = client.beta.agents.create(name="i", model="claude-sonnet-4-6", tools=TOOLSET)
    environment = client.beta.environments.create(name="e")
    created = client.beta.sessions.create(agent=agent.id, environment_id=environment.id,
                                          initial_events=[{"type": "user.message", "content": [
                                              {"type": "text", "text": prompt("arithmetic")}]}])
    assert created.status == "running"
    with client.beta.sessions.events.stream(created.id, extra_headers={"Last-Event-ID": f"sevt_{created.id[5:]}_0_0"}) as stream:
        for event in stream:
            if event.type == "session.status_idle":
                break
    replies = [e for e in client.beta.sessions.events.list(created.id) if e.type == "agent.message"]
    assert replies[-1].content[0].text == "391"


def test_errors_have_the_apis_shape_and_status(api):
    client = api.client()
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.beta.agents.retrieve("agent_0000")
    assert missing.value.body["error"] == {"type": "not_found_error", "message": "agent 'agent_0000' not found"}
    for unknown in (lambda: client.beta.sessions.retrieve("sesn_nope"), lambda: client.beta.environments.retrieve("env_x"),
                    lambda: client.beta.sessions.events.list("sesn_nope"), lambda: client.beta.agents.versions.list("x")):
        with pytest.raises(anthropic.NotFoundError):
            unknown()
    with pytest.raises(anthropic.BadRequestError, match="name: expected a non-empty string"):
        client.beta.agents.create(name="", model="claude-sonnet-4-6")
    with pytest.raises(anthropic.BadRequestError, match=r"tools.0.configs.0.name: expected one of bash"):
        client.beta.agents.create(name="a", model="m", tools=[{"type": "agent_toolset_20260401", "configs": [{"name": "sh"}]}])
    with pytest.raises(anthropic.BadRequestError, match="config.packages: Extra inputs are not permitted"):
        client.beta.environments.create(name="e", config={"type": "self_hosted", "packages": {"type": "packages"}})
    session_id = new_session(client)
    with pytest.raises(anthropic.BadRequestError, match="events.0: user.interrupt is not served"):
        client.beta.sessions.events.send(session_id, events=[{"type": "user.interrupt"}])
    with pytest.raises(anthropic.BadRequestError, match="events.0.tool_use_id: 'sevt_x': this session is not on a self_hosted"):
        client.beta.sessions.events.send(session_id, events=[{"type": "user.tool_result", "tool_use_id": "sevt_x"}])
    with pytest.raises(anthropic.BadRequestError, match="metadata.harnesslab_task: no task 'nope'"):
        new_session(client, "nope")
    error = client.beta.agents.with_raw_response  # the body names the request, as the API's errors do
    with pytest.raises(anthropic.BadRequestError) as bad:
        error.create(name="a", model="m", extra_body={"colour": "red"})
    assert bad.value.body["error"]["type"] == "invalid_request_error" and bad.value.body["request_id"].startswith("req_")
    assert "colour: Extra inputs are not permitted" in bad.value.body["error"]["message"]


def test_a_running_session_cannot_be_deleted_or_updated(api):
    client = api.client()
    session_id = new_session(client, "find_needle")
    client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": prompt("find_needle")}])
    with pytest.raises(anthropic.ConflictError, match="is running"):
        client.beta.sessions.delete(session_id)
    with pytest.raises(anthropic.ConflictError, match="is running"):
        client.beta.sessions.update(session_id, title="t")


def test_api_keys_are_checked_when_the_config_lists_some(keyed_api):
    with pytest.raises(anthropic.AuthenticationError) as wrong:
        keyed_api.client("sk-wrong").beta.agents.list()
    assert wrong.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert keyed_api.client("sk-right").beta.agents.list().data == []


def test_any_key_is_accepted_by_default_but_one_is_needed(api):
    assert api.client("whatever").beta.agents.list().data == []
    status, body = _get(f"{api.url}/v1/agents", {"anthropic-beta": "managed-agents-2026-04-01"})
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = _get(f"{api.url}/v1/agents", {"x-api-key": "k"})
    assert status == 400 and "anthropic-beta" in body["error"]["message"]


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
