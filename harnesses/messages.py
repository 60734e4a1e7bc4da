"""The session log as Messages-API messages, and the tool uses of a logged model response."""
from __future__ import annotations

from typing import Any, Iterable

from stores.base import Event
from stores.events import ModelResponse, ToolCall, ToolResult, UserMessage, typed


def malformed(event: Event) -> str | None:
    """Why the harness cannot read `event` as its type says (the shapes this module and the loop rely on), or None."""
    value = typed(event)
    if isinstance(value, ModelResponse):
        return content_problem(value.content)
    if isinstance(value, (ToolCall, ToolResult)):
        return _id_problem(f"{event.type} tool_use_id", value.tool_use_id)
    if isinstance(value, UserMessage) and not isinstance(value.text, str):
        return f"{event.type} text must be a string, got {_kind(value.text)}"
    return None


def content_problem(content: Any) -> str | None:
    """Why `content` is not a list of content blocks the harness can read, or None."""
    if not isinstance(content, list):
        return f"{ModelResponse.TYPE} content must be a list of content blocks, got {_kind(content)}"
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"content block {i} must be an object with a string type, got {_kind(block)}"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"content block {i} (text) must have a string text, got {_kind(block.get('text'))}"
        for field in PASSED_BACK.get(block["type"], ()):  # what goes back unchanged on later turns, or they are refused
            if not isinstance(block.get(field), str):
                return f"content block {i} ({block['type']}) must have a string {field}, got {_kind(block.get(field))}"
        if block["type"] == "tool_use":
            problem = _id_problem(f"content block {i} (tool_use) id", block.get("id"))
            if problem is None and not isinstance(block.get("name"), str):
                problem = f"content block {i} (tool_use) name must be a string, got {_kind(block.get('name'))}"
            if problem is not None:
                return problem
    return None


PASSED_BACK = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}  # anthropic.types.ThinkingBlockParam


def _id_problem(what: str, value: Any) -> str | None:
    if isinstance(value, str) and value:
        return None
    return f"{what} is missing" if value is None else f"{what} must be a non-empty string, got {_kind(value)}"


def _kind(value: Any) -> str:
    """How a bad value is named: scalars quoted (cut short), containers by type alone (their repr could be huge)."""
    if value is None:
        return "null"
    if isinstance(value, (str, int, float)):
        text = repr(value)
        return f"{type(value).__name__} {text if len(text) <= 60 else text[:60] + '...'}"
    return type(value).__name__


def tool_uses(response: Event) -> list[dict[str, Any]]:
    content = ModelResponse.value(response, "content") or []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]


def response_text(response: Event | None) -> str:
    return content_text(ModelResponse.value(response, "content") or []) if response is not None else ""


def content_text(content: Iterable[dict[str, Any]]) -> str:
    """The text blocks of a model's answer, joined."""
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def tool_result_block(event: Event) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": ToolResult.value(event, "tool_use_id"),
            "content": ToolResult.value(event, "output"), "is_error": bool(ToolResult.value(event, "is_error"))}


def events_to_messages(events: Iterable[Event]) -> list[dict[str, Any]]:
    """user.message, model.response and tool.result events as alternating user/assistant messages.

    Other event types (bookkeeping, or unknown types from a newer schema) are not part of the
    conversation and are skipped.
    """
    messages: list[dict[str, Any]] = []
    shown: set[str] = set()  # the tool_use ids of the messages so far
    renamed: dict[str, str] = {}  # the latest response's ids shown under another name, and that name
    for event in events:
        if event.type == ModelResponse.TYPE:
            content, renamed = _unique_uses(event, shown)
            messages.append({"role": "assistant", "content": content})
        elif event.type == UserMessage.TYPE:
            _add_user_block(messages, {"type": "text", "text": UserMessage.value(event, "text")})
        elif event.type == ToolResult.TYPE:
            block = tool_result_block(event)
            _add_user_block(messages, {**block, "tool_use_id": renamed.get(block["tool_use_id"], block["tool_use_id"])})
    return messages


def _unique_uses(response: Event, shown: set[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The response's content with every tool_use id once in the request, as the API requires (a model may repeat
    one; the harness refused those calls): a later block with an id of the same response is left out (one result
    answers them all), and an id an earlier response used is shown, with its result, as `<id>-<position>`."""
    content, renamed, here = [], {}, set()
    for block in ModelResponse.value(response, "content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            use_id = block.get("id")
            if use_id in here:
                continue
            here.add(use_id)
            if use_id in shown:
                renamed[use_id] = f"{use_id}-{response.position}"
                block = {**block, "id": renamed[use_id]}
        content.append(block)
    shown.update(here, renamed.values())
    return content, renamed


def with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the last content block for prompt caching: the whole prefix up to it is cached, and the
    next call, whose context extends this one, reads it back."""
    if not messages or not messages[-1]["content"]:
        return messages
    last = messages[-1]
    blocks = [*last["content"][:-1], {**last["content"][-1], "cache_control": {"type": "ephemeral"}}]
    return [*messages[:-1], {**last, "content": blocks}]


def _add_user_block(messages: list[dict[str, Any]], block: dict[str, Any]) -> None:
    if not messages or messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": []})
    content = messages[-1]["content"]
    if block["type"] == "tool_result":  # the API wants tool results before any text in a user turn
        # ... and in the order of their tool uses, whatever order they finished in (calls on several hands run at once)
        asked = messages[-2]["content"] if len(messages) > 1 and messages[-2]["role"] == "assistant" else []
        order = {b.get("id"): i for i, b in enumerate(asked) if isinstance(b, dict) and b.get("type") == "tool_use"}
        rank = order.get(block["tool_use_id"], len(order))
        index = next((i for i, b in enumerate(content)
                      if b["type"] != "tool_result" or order.get(b["tool_use_id"], len(order)) > rank), len(content))
        content.insert(index, block)
    else:
        content.append(block)


def without_cache_marks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the model reads them: no cache_control, string contents as one text block."""
    def clean(content: Any) -> Any:
        if isinstance(content, list):
            return [{k: v for k, v in block.items() if k != "cache_control"} for block in content]
        return [{"type": "text", "text": content}] if isinstance(content, str) else content

    return [{**m, "content": clean(m["content"])} for m in messages]


def stable_prefix(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> int:
    """How many leading messages of `current` the previous call's context had too (cache marks aside):
    the part a prompt cache can serve. A strategy that rewrites its past scores low."""
    same = 0
    for before, now in zip(previous, current):  # marks stripped only where they could differ: not every message
        if before != now and without_cache_marks([before]) != without_cache_marks([now]):
            break
        same += 1
    return same
