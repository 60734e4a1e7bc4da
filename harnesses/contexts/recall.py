"""Recall: the session as a context object. The window shows the task and the last `turns` turns, and the
brain reads anything older through two tools the harness answers from the log (never the sandbox):

- `get_events(start, stop)`: the events at positions [start, stop);
- `search_events(query, limit)`: events whose data contains `query`, each tool call with its result.

Nothing is ever summarized away: what slid out of the window is one tool call from being seen again.
The tools and their answers are the log tools of harnesses/contexts/vocabulary.py.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from harnesses.contexts.vocabulary import GET_EVENTS, OMITTED, SEARCH_EVENTS, event_line
from harnesses.contexts.window import WindowContext
from sandboxes.base import ToolResult
from sandboxes.tools import ToolError, ToolSpec, object_schema, validate_input
from stores import events as logged
from stores.base import Event

EVENT_CHARS = 4000  # of each event's data shown by a recall tool

RECALL_TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in [
    ToolSpec(GET_EVENTS, "Read this session's own log: the events at positions [start, stop), one JSON object per line.",
             object_schema(["start"], start={"type": "integer", "minimum": 0}, stop={"type": "integer", "minimum": 0}),
             idempotent=True, read_only=True),
    ToolSpec(SEARCH_EVENTS, "Search this session's own log for events whose data contains `query` (case-insensitive); "
             "a tool call comes with its result. One JSON object per line, oldest first.",
             object_schema(["query"], query={"type": "string", "minLength": 1}, limit={"type": "integer", "minimum": 1}),
             idempotent=True, read_only=True),
]}


class RecallContext(WindowContext):
    name = "recall"
    tools = tuple(RECALL_TOOLS.values())

    def note(self, omitted: int) -> str:
        return (f"[{omitted} {OMITTED} are not shown: the context keeps the last {self.turns}; "
                "get_events and search_events read them from this session's log]")

    async def run_tool(self, name: str, input: Any, events: Sequence[Event]) -> ToolResult:
        """Answer a recall tool from the log; bad input is a tool error, as for any tool."""
        try:
            validate_input(name, input, RECALL_TOOLS)
        except ToolError as exc:
            return ToolResult(str(exc), True)
        if name == GET_EVENTS:
            found = list(events[input["start"]:input.get("stop", len(events))])
        else:
            found = _search(events, input["query"], input.get("limit", 20))
        return ToolResult("\n".join(_line(e) for e in found) or "no events", False)


def _search(events: Sequence[Event], query: str, limit: int) -> list[Event]:
    query = query.lower()
    results = {logged.ToolResult.read(e).tool_use_id: e for e in events if e.type == logged.ToolResult.TYPE}
    found: list[Event] = []
    for event in events:
        if event.type in (logged.ToolResult.TYPE, logged.ModelResponse.TYPE) or query not in json.dumps(event.data).lower():
            continue  # results come with their calls; responses repeat the calls
        found.append(event)
        call = logged.ToolCall.read(event) if event.type == logged.ToolCall.TYPE else None
        if call is not None and call.tool_use_id in results:
            found.append(results[call.tool_use_id])
        if len(found) >= 2 * limit:
            break
    return found


def _line(event: Event) -> str:
    data = json.dumps(event.data)
    return event_line(event.position, event.type, event.data if len(data) <= EVENT_CHARS else data[:EVENT_CHARS] + "...")
