"""The API's events are a projection of the session log, and the user's events are appended to it.

Each log event projects to zero or more API events, in order; the `index`-th one from log position `position` has
the id `ids.event_id(session, position, index)`, so a list pages over the log, and a stream resumes right after
any event it sent. Each event also says which log position it projects (`harnesslab.position`), a field the SDK's
types keep as an extra.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from managed import errors, ids
from managed.errors import invalid, not_served
from stores.base import Event
from stores.events import (
    ContextCompacted, HarnessWoke, ModelResponse, SessionCompleted, SessionCreated, SessionDeleted, SessionFailed,
    ToolResult, UserMessage, WorkerResult,
)

ENVIRONMENT_TYPE = "environment_type"  # the session meta's key naming its environment's type: cloud or self_hosted

USER_EVENTS = ("user.message", "user.interrupt", "user.tool_confirmation", "user.tool_result",
               "user.custom_tool_result", "user.define_outcome")


class Projection:
    """Fed a session's log in order, from position 0, gives the API's events; what it keeps between events is what
    the log implies (which tool_use event each tool call is, whether a turn is running, which calls a self-hosted
    environment's worker is to answer)."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        self.tool_use_events: dict[str, str] = {}  # the model's tool_use id -> the id of its agent.tool_use event
        self.running = False
        self.worker_runs_tools = False  # the session is on a self-hosted environment
        self.awaiting: dict[str, str] = {}  # the calls its worker is to answer: tool_use id -> agent.tool_use event id
        self.answered_by_worker: set[str] = set()

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
        if event.type == SessionCreated.TYPE:
            self.worker_runs_tools = event.data.get(ENVIRONMENT_TYPE) == "self_hosted"
        elif event.type == UserMessage.TYPE:
            yield {"type": "user.message", "content": [_text(UserMessage.value(event, "text"))]}
        elif event.type == HarnessWoke.TYPE and not self.running and not self.awaiting:
            self.running = True
            yield {"type": "session.status_running"}
        elif event.type == ModelResponse.TYPE:
            yield from self._model_request(event)
        elif event.type == WorkerResult.TYPE:
            result = WorkerResult.read(event)
            self.answered_by_worker.add(result.tool_use_id)
            yield {"type": "user.tool_result", "is_error": bool(result.is_error),
                   "tool_use_id": self.tool_use_events.get(result.tool_use_id, result.tool_use_id),
                   "content": [_text(result.output)] if result.output else []}
            yield from self._resolve(result.tool_use_id)
        elif event.type == ToolResult.TYPE:
            result = ToolResult.read(event)
            if result.tool_use_id not in self.answered_by_worker:  # the worker's answer was shown as it came
                yield {"type": "agent.tool_result", "is_error": bool(result.is_error),
                       "tool_use_id": self.tool_use_events.get(result.tool_use_id, result.tool_use_id),
                       "content": [_text(result.output)] if result.output else []}
            yield from self._resolve(result.tool_use_id)
        elif event.type == ContextCompacted.TYPE:
            yield {"type": "agent.thread_context_compacted"}
        elif event.type == SessionCompleted.TYPE:
            self.running, self.awaiting = False, {}
            yield {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}
        elif event.type == SessionFailed.TYPE:
            self.running, self.awaiting = False, {}
            yield {"type": "session.error", "error": _error(SessionFailed.value(event, "reason") or "")}
            yield {"type": "session.status_idle", "stop_reason": {"type": "retries_exhausted"}}
        elif event.type == SessionDeleted.TYPE:
            yield {"type": "session.deleted"}

    def _model_request(self, event: Event) -> list[dict[str, Any]]:
        """span.model_request_start, what the model said (text runs, thinking, tool uses), span.model_request_end;
        then, if a worker is to run the tools it called, the session idles until their results come."""
        response = ModelResponse.read(event)
        shapes: list[dict[str, Any]] = [{"type": "span.model_request_start", "at": response.requested_at or event.ts}]
        texts: list[dict[str, Any]] = []
        for block in [*response.content, None]:  # None: the end, where a run of text closes
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(_text(block.get("text", "")))
                continue
            if texts:
                shapes.append({"type": "agent.message", "content": texts})
                texts = []
            if kind == "thinking":
                shapes.append({"type": "agent.thinking"})
            elif kind == "tool_use":
                shapes.append({"type": "agent.tool_use", "name": block.get("name"), "input": block.get("input") or {},
                               "evaluated_permission": "allow", "harnesslab": {"tool_use_id": block.get("id")}})
        usage = response.usage or {}
        shapes.append({"type": "span.model_request_end", "model_request_start_id": ids.event_id(self.session_id, event.position, 0),
                       "is_error": False, "model_usage": {key: int(usage.get(key) or 0) for key in (
                           "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")},
                       "harnesslab": {"ttft_ms": response.ttft_ms, "latency_ms": response.latency_ms,
                                      "model": response.model, "request_id": response.request_id}})
        calls = {shape["harnesslab"]["tool_use_id"]: ids.event_id(self.session_id, event.position, index)
                 for index, shape in enumerate(shapes) if shape["type"] == "agent.tool_use"}
        if self.worker_runs_tools and calls:
            self.running, self.awaiting = False, calls
            shapes.append(self._requires_action())
        return shapes

    def _resolve(self, tool_use_id: str) -> Iterator[dict[str, Any]]:
        """A call the worker was to answer has its result: the session idles on the rest, or runs again."""
        if self.awaiting.pop(tool_use_id, None) is None:
            return
        if self.awaiting:
            yield self._requires_action()
        else:
            self.running = True
            yield {"type": "session.status_running"}

    def _requires_action(self) -> dict[str, Any]:
        return {"type": "session.status_idle", "stop_reason": {"type": "requires_action", "event_ids": list(self.awaiting.values())}}


def project(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    """Every API event of a log, from its start."""
    return Projection(session_id).feed(events)


def awaiting_worker(session_id: str, events: Iterable[Event]) -> dict[str, str]:
    """The calls of the session's latest model response that its self-hosted worker is still to answer: the
    model's tool_use id -> its agent.tool_use event's id (none on a cloud environment)."""
    projection = Projection(session_id)
    projection.feed(events)
    return projection.awaiting


def waits_for_worker(events: Iterable[Event]) -> bool:
    """Whether the session is idle until its self-hosted worker answers calls (the event ids do not matter here)."""
    events = list(events)
    return bool(events) and events[0].data.get(ENVIRONMENT_TYPE) == "self_hosted" and bool(awaiting_worker("", events))


def user_events(events: Any, awaiting: Mapping[str, str] | None) -> list[Event]:
    """The log events the user's API events append; a 400 naming the event for anything else. `awaiting`: the
    calls a self-hosted worker may answer with user.tool_result (see `awaiting_worker`), None if no worker runs
    the session's tools."""
    if not isinstance(events, list) or not events:
        raise invalid("events: expected a non-empty array of user events")
    answerable = {event_id: tool_use_id for tool_use_id, event_id in (awaiting or {}).items()}
    appended = []
    for index, event in enumerate(events):
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "user.tool_result":
            appended.append(_tool_result(event, f"events.{index}", answerable, awaiting is not None))
        else:
            appended.append(_user_message(event, f"events.{index}"))
    return appended


def _tool_result(event: dict[str, Any], where: str, answerable: dict[str, str], self_hosted: bool) -> Event:
    """A self-hosted worker's result of one call (`answerable`: agent.tool_use event id -> the model's tool_use id,
    less each call this request already answered)."""
    errors.known_fields(event, {"type", "tool_use_id", "content", "is_error"}, f"{where}.")
    event_id = event.get("tool_use_id")
    if event_id not in answerable:
        why = ("no call of this session waits for its worker's result with that id (it has one already, or is not an "
               "agent.tool_use event of this session)") if self_hosted else (
               "this session is not on a self_hosted environment: harnesslab's sandboxes run its tools")
        raise invalid(f"{where}.tool_use_id: {str(event_id)[:100]!r}: {why}")
    texts = _texts(event.get("content") or [], f"{where}.content", "tool results")
    return WorkerResult(answerable.pop(event_id), "\n".join(texts), errors.flag(event, "is_error", False)).event()


def _user_message(event: Any, where: str) -> Event:
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in USER_EVENTS:
        raise invalid(f"{where}.type: expected one of {', '.join(USER_EVENTS)}, got {kind!r}")
    if kind != "user.message":
        raise not_served(f"{where}: {kind}", "this server serves user.message, and user.tool_result from a self-hosted "
                         "environment's worker; interrupts, tool confirmations and custom tool results come later")
    errors.known_fields(event, {"type", "content"}, f"{where}.")
    content = event.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise invalid(f"{where}.content: expected a non-empty array of content blocks")
    return UserMessage("\n\n".join(_texts(content, f"{where}.content", "text messages"))).event()


def _texts(content: Any, where: str, holds: str) -> list[str]:
    """The texts of an array of text blocks; a 400 naming the first block that is not one."""
    if not isinstance(content, list):
        raise invalid(f"{where}: expected an array of content blocks")
    texts = []
    for index, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in ("image", "document", "search_result"):
                raise not_served(f"{where}.{index}: {kind} blocks", f"harnesslab's log holds {holds} as text")
            raise invalid(f"{where}.{index}: expected a text block {{\"type\": \"text\", \"text\": ...}}")
        texts.append(block["text"])
    return texts


def _text(text: Any) -> dict[str, str]:
    return {"type": "text", "text": str(text)}


def _error(reason: str) -> dict[str, Any]:
    """A failed session's reason as the API's error object (a model that could not answer, or anything else)."""
    kind = "model_request_failed_error" if reason.startswith("ModelError") else "unknown_error"
    return {"type": kind, "message": reason, "retry_status": {"type": "exhausted"}}
