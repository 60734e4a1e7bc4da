"""What a harness should do next, derived from nothing but the session log."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from harnesses.messages import malformed, response_text, tool_uses
from stores.base import TERMINAL_TYPES, Event
from stores.events import ModelResponse, SessionCreated, ToolCall, ToolResult, UserMessage, typed


@dataclass(frozen=True, slots=True)
class CallModel:
    turn_started: float  # ts of the user message this call answers (for per-turn TTFT)
    first_of_turn: bool


@dataclass(frozen=True, slots=True)
class RunTools:
    calls: list[dict[str, Any]]  # tool_use blocks that have no tool.result yet, one per id
    logged: set[str] = field(default_factory=set)  # ids whose tool.call is already in the log
    refused: dict[str, str] = field(default_factory=dict)  # id -> why its call must not run (the id is not unique)


@dataclass(frozen=True, slots=True)
class Finish:
    status: str  # "completed" | "failed"
    reason: str
    final_text: str = ""


@dataclass(frozen=True, slots=True)
class Ended:
    """The log already ends in a terminal event, or waits for a user message."""

    status: str
    reason: str
    final_text: str = ""


Step = CallModel | RunTools | Finish | Ended


def next_step(events: Sequence[Event], max_turns: int) -> Step:
    """The next step of a log that `log_problem` finds nothing wrong with."""
    done = ended(events)
    if done is not None:
        return done
    user: Event | None = None
    response: Event | None = None
    latest = -1  # the index of the latest response
    calls_this_turn = 0
    for index, event in enumerate(events):  # by type alone: only what the latest response asked is read below
        if event.type == UserMessage.TYPE:
            user, calls_this_turn = event, 0
        elif event.type == ModelResponse.TYPE:
            response, latest = event, index
            calls_this_turn += 1

    if user is None:
        return Ended("awaiting_input", "the session has no user message yet")
    uses = tool_uses(response) if response is not None else []
    since = events[latest + 1:] if response is not None else []
    results = {ToolResult.value(e, "tool_use_id") for e in since if e.type == ToolResult.TYPE}
    pending = [use for use in uses if use["id"] not in results]
    if pending:
        logged = {ToolCall.value(e, "tool_use_id") for e in since if e.type == ToolCall.TYPE}
        used = {use["id"] for e in events[:latest] if e.type == ModelResponse.TYPE for use in tool_uses(e)}  # by earlier responses
        return _run_tools(pending, logged, used)
    answered = response is not None and response.position > user.position
    if answered and not uses:
        return Finish("completed", ModelResponse.value(response, "stop_reason") or "end_turn", response_text(response))
    if calls_this_turn >= max_turns:
        return Finish("failed", f"max_turns: {max_turns} model calls without ending the turn", response_text(response))
    return CallModel(user.ts, first_of_turn=calls_this_turn == 0)


def _run_tools(pending: list[dict[str, Any]], logged: set[str], used: set[str]) -> RunTools:
    """One call per id; an id that is not unique (in the response, or in the session) is refused, not run: one
    result answers it, and running a call under another's id would reuse that call's idempotency key."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for use in pending:
        by_id.setdefault(use["id"], []).append(use)
    refused = {}
    for use_id, same in by_id.items():
        if use_id in used:
            refused[use_id] = (f"tool_use id {use_id!r} was already used by an earlier tool call in this session, so this "
                               "call did not run: tool_use ids must be unique within a session; call it again with a new id")
        elif len(same) > 1:
            names = ", ".join(str(use.get("name")) for use in same)
            refused[use_id] = (f"tool_use id {use_id!r} is used by {len(same)} tool calls of this response ({names}), so "
                               "none of them ran: tool_use ids must be unique; call them again, each with an id of its own")
    return RunTools([same[0] for same in by_id.values()], logged & by_id.keys(), refused)


def ended(events: Sequence[Event]) -> Ended | None:
    """The terminal event after the last user message, as a step; None while the session is active. Reads types and
    the terminal event alone, so it holds on a log `log_problem` finds fault with."""
    for event in reversed(events):
        if event.type == UserMessage.TYPE:
            return None
        if event.type in TERMINAL_TYPES:
            end = typed(event)
            return Ended(end.STATUS, str(end.reason), str(end.final_text or ""))
    return None


def log_problem(events: Sequence[Event]) -> str | None:
    """Why a harness cannot carry on from this log, naming the first bad position; None if it can.

    A log read from a store may hold anything: a position gap, an event whose data does not have its type's shape
    (see `harnesses.messages.malformed`), or no user message (its creator stopped between creating it and the first
    append)."""
    if not events:
        return "position 0: the store returned no events, not even session.created"
    for index, event in enumerate(events):
        if event.position != index:
            return f"position {index}: the store returned position {event.position} here (a gap in the log)"
        if index == 0 and event.type != SessionCreated.TYPE:
            return f"position 0: the log starts with {event.type}, not {SessionCreated.TYPE}"
        problem = malformed(event)
        if problem is not None:
            return f"position {index}: {problem}"
    if not any(event.type == UserMessage.TYPE for event in events):
        return (f"position {len(events) - 1}: the log ends here without a {UserMessage.TYPE} "
                "(whatever created the session stopped before appending one)")
    return None


def open_calls(events: Sequence[Event]) -> list[ToolCall]:
    """Each tool.call that has no tool.result (calls without a readable id aside: nothing can answer them)."""
    calls = [ToolCall.read(e) for e in events if e.type == ToolCall.TYPE and not malformed(e)]
    answered = {ToolResult.read(e).tool_use_id for e in events if e.type == ToolResult.TYPE and not malformed(e)}
    return [call for call in calls if call.tool_use_id not in answered]
