"""What a harness should do next, derived from nothing but the session log."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from harnesses.messages import response_text, tool_uses
from stores.base import TERMINAL_TYPES, Event


@dataclass(frozen=True, slots=True)
class CallModel:
    turn_started: float  # ts of the user message this call answers (for per-turn TTFT)
    first_of_turn: bool


@dataclass(frozen=True, slots=True)
class RunTools:
    calls: list[dict[str, Any]]  # tool_use blocks that have no tool.result yet
    logged: set[str] = field(default_factory=set)  # ids whose tool.call is already in the log


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
    terminal: Event | None = None
    user: Event | None = None
    response: Event | None = None
    results: set[str] = set()
    logged: set[str] = set()
    calls_this_turn = 0
    for event in events:
        kind = event.type
        if kind == "user.message":
            terminal, user, calls_this_turn = None, event, 0
        elif kind == "model.response":
            response, results, logged = event, set(), set()
            calls_this_turn += 1
        elif kind == "tool.call":
            logged.add(event.data.get("tool_use_id"))
        elif kind == "tool.result":
            results.add(event.data.get("tool_use_id"))
        elif kind in TERMINAL_TYPES:
            terminal = event

    if terminal is not None:
        status = terminal.type.removeprefix("session.")
        return Ended(status, terminal.data.get("reason", ""), terminal.data.get("final_text", ""))
    if user is None:
        return Ended("awaiting_input", "the session has no user message yet")
    uses = tool_uses(response) if response is not None else []
    pending = [use for use in uses if use.get("id") not in results]
    if pending:
        return RunTools(pending, logged & {use.get("id") for use in pending})
    answered = response is not None and response.position > user.position
    if answered and not uses:
        return Finish("completed", response.data.get("stop_reason", "end_turn"), response_text(response))
    if calls_this_turn >= max_turns:
        return Finish("failed", f"max_turns: {max_turns} model calls without ending the turn", response_text(response))
    return CallModel(user.ts, first_of_turn=calls_this_turn == 0)
