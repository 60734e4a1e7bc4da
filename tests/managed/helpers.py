"""What the tests of the served API share: a session created through the SDK, a turn streamed to idle."""
from __future__ import annotations

from typing import Any

import anthropic

from experiments.tasks import load_suite

TOOLSET = [{"type": "agent_toolset_20260401"}]


def prompt(task: str) -> str:
    return next(t.prompt for _, _, t in load_suite("smoke") if t.name == task)


def new_session(client: anthropic.Anthropic, task: str | None = None, **agent: Any) -> str:
    created = client.beta.agents.create(name="tester", model="claude-sonnet-4-6", tools=TOOLSET, **agent)
    environment = client.beta.environments.create(name="local", config={"type": "cloud"})
    metadata = {"harnesslab_task": task} if task else {}
    return client.beta.sessions.create(agent=created.id, environment_id=environment.id, metadata=metadata).id


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def turn(client: anthropic.Anthropic, session_id: str, text: str) -> list[Any]:
    """Send a user message with the stream open, and read the stream until the turn ends (an idle that does not
    wait for a self-hosted worker's tool results)."""
    streamed = []
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(session_id, events=[user_message(text)])
        for event in stream:
            streamed.append(event)
            if turn_ended(event):
                break
    return streamed


def turn_ended(event: Any) -> bool:
    return event.type == "session.status_idle" and event.stop_reason.type != "requires_action"
