"""Invariants every session log must keep, checked after every run, Jepsen-style.

- positions are contiguous from 0, and position 0 is session.created;
- every event has the shape its type says (`harnesses.messages.malformed`); the rules below skip one that has not;
- every tool.result answers a tool_use of an earlier model.response;
- a tool_use id has at most one tool.call in the session, logged before its result (its idempotency key is the
  id), and at most one tool.result per model.response (a model that reuses an id is answered with an error);
- in a session that has ended, every tool.call has its result;
- every session ends: its last lifecycle event is session.completed, or session.failed with a reason.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from harnesses.messages import malformed, tool_uses
from stores.base import TERMINAL_TYPES, Event
from stores.events import ModelResponse, SessionCreated, SessionFailed, ToolCall, ToolResult, UserMessage


@dataclass(frozen=True, slots=True)
class Violation:
    session_id: str
    position: int | None
    rule: str
    detail: str

    def __str__(self) -> str:
        where = f"position {self.position}" if self.position is not None else "the session"
        return f"session {self.session_id}, {where}: {self.rule}: {self.detail}"


def check_session(session_id: str, events: list[Event]) -> list[Violation]:
    found: list[Violation] = []

    def violation(position: int | None, rule: str, detail: str) -> None:
        found.append(Violation(session_id, position, rule, detail))

    expected = 0
    for event in events:  # each break is reported once, where it happens
        if event.position != expected:
            violation(event.position, "contiguous positions", f"expected position {expected} here, found {event.position}")
        expected = (event.position if event.position is not None else expected) + 1
    if not events or events[0].type != SessionCreated.TYPE:
        violation(0, "starts with session.created", f"the log starts with {events[0].type if events else 'nothing'}")

    asked: set[str] = set()
    called: dict[str, int] = {}
    answered: dict[str, int] = {}  # of the latest model.response
    closed: set[str] = set()  # ids with a tool.result
    for event in events:
        position = event.position
        problem = malformed(event)
        if problem is not None:
            violation(position, "well-formed events", problem)
        elif event.type == ModelResponse.TYPE:
            asked.update(use["id"] for use in tool_uses(event))
            answered = {}
        elif event.type == ToolCall.TYPE:
            use_id = ToolCall.read(event).tool_use_id
            if use_id in called:
                violation(position, "one tool.call per tool use", f"{use_id} was already called at position {called[use_id]}")
            called.setdefault(use_id, position)
        elif event.type == ToolResult.TYPE:
            use_id = ToolResult.read(event).tool_use_id
            if use_id not in asked:
                violation(position, "results answer a tool_use", f"no earlier model.response asked for {use_id}")
            if use_id in answered:
                violation(position, "one tool.result per tool use", f"{use_id} was already answered at position {answered[use_id]}")
            answered.setdefault(use_id, position)
            closed.add(use_id)

    lifecycle = [e for e in events if e.type in TERMINAL_TYPES or e.type == UserMessage.TYPE]
    ended = bool(lifecycle) and lifecycle[-1].type in TERMINAL_TYPES
    if not ended:
        violation(None, "every session ends", f"the last lifecycle event is {lifecycle[-1].type if lifecycle else 'none'}")
    elif lifecycle[-1].type == SessionFailed.TYPE and not SessionFailed.read(lifecycle[-1]).reason:
        violation(lifecycle[-1].position, "failures have a reason", "session.failed without a reason")
    if ended:
        for use_id, position in called.items():
            if use_id not in closed:
                violation(position, "calls are answered", f"{use_id} was called but the ended session has no result for it")
    return found


def check_logs(logs: dict[str, list[Event]]) -> list[Violation]:
    return [v for session_id, events in logs.items() for v in check_session(session_id, events)]


def violation_rows(violations: Iterable[Violation]) -> list[dict]:
    return [asdict(v) for v in violations]
