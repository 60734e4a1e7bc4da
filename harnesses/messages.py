"""The session log as Messages-API messages, and the tool uses of a logged model response."""
from __future__ import annotations

from typing import Any, Iterable

from stores.base import Event


def tool_uses(response: Event) -> list[dict[str, Any]]:
    return [b for b in response.data.get("content", []) if isinstance(b, dict) and b.get("type") == "tool_use"]


def response_text(response: Event | None) -> str:
    return content_text(response.data.get("content", [])) if response is not None else ""


def content_text(content: Iterable[dict[str, Any]]) -> str:
    """The text blocks of a model's answer, joined."""
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def tool_result_block(event: Event) -> dict[str, Any]:
    data = event.data
    return {
        "type": "tool_result",
        "tool_use_id": data["tool_use_id"],
        "content": data.get("output", ""),
        "is_error": bool(data.get("is_error", False)),
    }


def events_to_messages(events: Iterable[Event]) -> list[dict[str, Any]]:
    """user.message, model.response and tool.result events as alternating user/assistant messages.

    Other event types (bookkeeping, or unknown types from a newer schema) are not part of the
    conversation and are skipped.
    """
    messages: list[dict[str, Any]] = []
    for event in events:
        if event.type == "model.response":
            messages.append({"role": "assistant", "content": list(event.data.get("content", []))})
        elif event.type == "user.message":
            _add_user_block(messages, {"type": "text", "text": event.data.get("text", "")})
        elif event.type == "tool.result":
            _add_user_block(messages, tool_result_block(event))
    return messages


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
