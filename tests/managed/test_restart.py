"""The server keeps no session state outside the store: one stopped mid-turn, and another started on the same store,
carries the turn on; a stream that reconnects to the new server with its last event id misses nothing."""
from __future__ import annotations

from tests.managed.conftest import serve_in_thread
from tests.managed.helpers import new_session, prompt, user_message


def test_a_server_started_on_the_same_store_finishes_a_turn_the_last_one_left(tmp_path):
    parts = [f"store.path={tmp_path}/serve.sqlite", f"sandbox.root={tmp_path}/hands", "sandbox.keep=true"]
    first = serve_in_thread(parts)
    api = next(first)
    client = api.client()
    session_id = new_session(client, "find_needle")
    before = []
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(session_id, events=[user_message(prompt("find_needle"))])
        for event in stream:
            before.append(event)
            if sum(e.type == "agent.tool_result" for e in before) == 4:
                break
    first.close()  # the server stops mid-turn: its wake is cancelled, the log is all that is left

    second = serve_in_thread(parts)
    api = next(second)
    client = api.client()
    after = []
    with client.beta.sessions.events.stream(session_id, extra_headers={"Last-Event-ID": before[-1].id}) as stream:
        for event in stream:
            after.append(event)
            if event.type == "session.status_idle":
                break
    listed = list(client.beta.sessions.events.list(session_id, limit=1000))
    second.close()
    assert [e.id for e in before + after] == [e.id for e in listed]
    assert after[-1].stop_reason.type == "end_turn"
    answer = [block.text for e in listed if e.type == "agent.message" for block in e.content][-1]
    assert answer.startswith("The access code is")
