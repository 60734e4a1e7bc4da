"""The API's events are a projection of the session log, and the user's events are appended to it.

Each log event projects to zero or more API events, in order; the `index`-th one from log position `position` has
the id `ids.event_id(session, position, index)`, so a list pages over the log, and a stream resumes right after
any event it sent. Each event also says which log position it projects (`harnesslab.position`), a field the SDK's
types keep as an extra.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from managed import errors, ids
from managed.errors import invalid, not_served
from stores.base import Event
from stores.events import (
    ContextCompacted, HarnessWoke, ModelResponse, SessionCompleted, SessionDeleted, SessionFailed, ToolResult, UserMessage,
)

USER_EVENTS = ("user.message", "user.interrupt", "user.tool_confirmation", "user.tool_result",
               "user.custom_tool_result", "user.define_outcome")


class Projection:
    """Fed a session's log in order, from position 0, gives the API's events; what it keeps between events is what
    the log implies (which tool_use event each tool call is, whether a turn is running)."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        self.tool_use_events: dict[str, str] = {}  # the model's tool_use id -> the id of its agent.tool_use event
        self.running = False

    def feed(self, events: Iterable[Event]) -> list[dict[str, Any]]:
        return [api_event for event in events for api_event in self._project(event)]

    def _project(self, event: Event) -> list[dict[str, Any]]:
        projected = []
        for index, shape in enumerate(list(self._shapes(event))):
            at, extra = shape.pop("at", event.ts), {"position": event.position, **shape.pop("harnesslab", {})}
            api_event = {**shape, "id": ids.event_id(self.session_id, event.position, index),
                         "processed_at": ids.timestamp(at), "harnesslab": extra}
            if api_event["type"] == "agent.tool_use":
                self.tool_use_events[extra["tool_use_id"]] = api_event["id"]
            projected.append(api_event)
        return projected

    def _shapes(self, event: Event) -> Iterator[dict[str, Any]]:
        if event.type == UserMessage.TYPE:
            yield {"type": "user.message", "content": [_text(UserMessage.value(event, "text"))]}
        elif event.type == HarnessWoke.TYPE and not self.running:
            self.running = True
            yield {"type": "session.status_running"}
        elif event.type == ModelResponse.TYPE:
            yield from self._model_request(event)
        elif event.type == ToolResult.TYPE:
            result = ToolResult.read(event)
            yield {"type": "agent.tool_result", "is_error": bool(result.is_error),
                   "tool_use_id": self.tool_use_events.get(result.tool_use_id, result.tool_use_id),
                   "content": [_text(result.output)] if result.output else []}
        elif event.type == ContextCompacted.TYPE:
            yield {"type": "agent.thread_context_compacted"}
        elif event.type == SessionCompleted.TYPE:
            self.running = False
            yield {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}
        elif event.type == SessionFailed.TYPE:
            self.running = False
            yield {"type": "session.error", "error": _error(SessionFailed.value(event, "reason") or "")}
            yield {"type": "session.status_idle", "stop_reason": {"type": "retries_exhausted"}}
        elif event.type == SessionDeleted.TYPE:
            yield {"type": "session.deleted"}

    def _model_request(self, event: Event) -> Iterator[dict[str, Any]]:
        """span.model_request_start, what the model said (text runs, thinking, tool uses), span.model_request_end."""
        response = ModelResponse.read(event)
        start_id = ids.event_id(self.session_id, event.position, 0)
        yield {"type": "span.model_request_start", "at": response.requested_at or event.ts}
        texts: list[dict[str, Any]] = []
        for block in [*response.content, None]:  # None: the end, where a run of text closes
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(_text(block.get("text", "")))
                continue
            if texts:
                yield {"type": "agent.message", "content": texts}
                texts = []
            if kind == "thinking":
                yield {"type": "agent.thinking"}
            elif kind == "tool_use":
                yield {"type": "agent.tool_use", "name": block.get("name"), "input": block.get("input") or {},
                       "evaluated_permission": "allow", "harnesslab": {"tool_use_id": block.get("id")}}
        usage = response.usage or {}
        yield {"type": "span.model_request_end", "model_request_start_id": start_id, "is_error": False,
               "model_usage": {key: int(usage.get(key) or 0) for key in (
                   "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")},
               "harnesslab": {"ttft_ms": response.ttft_ms, "latency_ms": response.latency_ms,
                              "model": response.model, "request_id": response.request_id}}


def project(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    """Every API event of a log, from its start."""
    return Projection(session_id).feed(events)


def user_messages(events: Any) -> list[Event]:
    """The log events the user's API events append; a 400 naming the event for anything else."""
    if not isinstance(events, list) or not events:
        raise invalid("events: expected a non-empty array of user events")
    return [_user_message(event, f"events.{index}") for index, event in enumerate(events)]


def _user_message(event: Any, where: str) -> Event:
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in USER_EVENTS:
        raise invalid(f"{where}.type: expected one of {', '.join(USER_EVENTS)}, got {kind!r}")
    if kind != "user.message":
        raise not_served(f"{where}: {kind}", "this slice serves user.message only; interrupts, tool confirmations and "
                         "tool results come later")
    errors.known_fields(event, {"type", "content"}, f"{where}.")
    content = event.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise invalid(f"{where}.content: expected a non-empty array of content blocks")
    texts = []
    for index, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in ("image", "document"):
                raise not_served(f"{where}.content.{index}: an {kind} block", "harnesslab's log holds text messages")
            raise invalid(f"{where}.content.{index}: expected a text block {{\"type\": \"text\", \"text\": ...}}")
        texts.append(block["text"])
    return UserMessage("\n\n".join(texts)).event()


def _text(text: Any) -> dict[str, str]:
    return {"type": "text", "text": str(text)}


def _error(reason: str) -> dict[str, Any]:
    """A failed session's reason as the API's error object (a model that could not answer, or anything else)."""
    kind = "model_request_failed_error" if reason.startswith("ModelError") else "unknown_error"
    return {"type": kind, "message": reason, "retry_status": {"type": "exhausted"}}
