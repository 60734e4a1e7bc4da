"""Server-side context editing, applied to the prompt before the model reads it, as the API applies it: the
client keeps sending its whole conversation, and the response's `context_management.applied_edits` says what
the server cleared this time.

- Messages before the last `compaction` block are dropped (the compaction guide: "The API automatically drops all
  message blocks prior to the compaction block"); a block with null content is a no-op.
- `clear_tool_uses_20250919`: past its `trigger` (input tokens, default 100,000, or tool uses), every tool use but
  the latest `keep` (default 3) and those of `exclude_tools` has its result replaced by a placeholder (and its input
  emptied, for `clear_tool_inputs`: true, or a list naming its tool), unless that clears fewer than `clear_at_least`
  input tokens.
- `clear_thinking_20251015`: thinking blocks are dropped from all but the latest `keep` assistant turns (default 1;
  `all` keeps every one).

Sources: https://platform.claude.com/docs/en/build-with-claude/context-editing and .../compaction; the types are
anthropic.types.beta's (BetaClearToolUses20250919EditParam, BetaClearThinking20251015EditParam,
BetaClearToolUses20250919EditResponse, BetaClearThinking20251015EditResponse).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harnesses.contexts.vocabulary import API_CLEARED
from harnesses.emulator.service import prompt_tokens

CLEAR_TOOL_USES, CLEAR_THINKING, COMPACT = "clear_tool_uses_20250919", "clear_thinking_20251015", "compact_20260112"
DEFAULT_CLEAR_TRIGGER = {"type": "input_tokens", "value": 100_000}
DEFAULT_KEEP_TOOL_USES = {"type": "tool_uses", "value": 3}
DEFAULT_KEEP_THINKING = {"type": "thinking_turns", "value": 1}
THINKING_BLOCKS = ("thinking", "redacted_thinking")


@dataclass(frozen=True, slots=True)
class Edited:
    """The prompt as the model reads it, what was cleared from it, and the input tokens of the prompt as sent."""

    body: dict[str, Any]
    applied: list[dict[str, Any]] = field(default_factory=list)  # context_management.applied_edits
    original_tokens: int | None = None  # None: nothing was edited


def edited_prompt(body: dict[str, Any]) -> Edited:
    """`body` as the model reads it: from its last compaction block on, with its context edits applied."""
    config = body.get("context_management")
    edits = (config.get("edits") or []) if isinstance(config, dict) else []
    prompt = since_compaction(body)
    if not edits and prompt is body:
        return Edited(body)
    applied = []
    for edit in edits:
        clear = _CLEARERS.get(edit.get("type"))
        outcome = clear(prompt, edit) if clear else None
        if outcome is not None:
            prompt, entry = outcome
            applied.append(entry)
    return Edited(prompt, applied, prompt_tokens(body))


def since_compaction(body: dict[str, Any]) -> dict[str, Any]:
    """The body with every message block before its last compaction block (one with a summary) dropped."""
    messages = body.get("messages") or []
    for i in range(len(messages) - 1, -1, -1):
        content = messages[i].get("content")
        blocks = content if isinstance(content, list) else []
        at = next((k for k in range(len(blocks) - 1, -1, -1) if _summary(blocks[k])), None)
        if at is not None:
            return {**body, "messages": [{**messages[i], "content": blocks[at:]}, *messages[i + 1:]]}
    return body


def clear_tool_uses(body: dict[str, Any], edit: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The body with old tool results cleared, and the applied edit; None if the edit does not apply."""
    uses = [b for m in body["messages"] if m["role"] == "assistant" for b in _blocks(m) if b.get("type") == "tool_use"]
    trigger = edit.get("trigger") or DEFAULT_CLEAR_TRIGGER
    reached = len(uses) if trigger["type"] == "tool_uses" else prompt_tokens(body)
    if reached <= trigger["value"]:
        return None
    keep = (edit.get("keep") or DEFAULT_KEEP_TOOL_USES)["value"]
    excluded = set(edit.get("exclude_tools") or ())
    cleared = {u["id"]: u for u in uses[:max(0, len(uses) - keep)] if u.get("name") not in excluded}
    if not cleared:
        return None
    inputs = edit.get("clear_tool_inputs") or False
    empty = {i for i, u in cleared.items() if inputs is True or isinstance(inputs, list) and u.get("name") in inputs}
    edited = {**body, "messages": [_clear_uses(m, cleared, empty) for m in body["messages"]]}
    tokens = prompt_tokens(body) - prompt_tokens(edited)
    if tokens < (edit.get("clear_at_least") or {"value": 0})["value"]:
        return None  # "Context will only be modified if at least this many tokens can be removed"
    return edited, {"type": CLEAR_TOOL_USES, "cleared_tool_uses": len(cleared), "cleared_input_tokens": tokens}


def clear_thinking(body: dict[str, Any], edit: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The body without the thinking of all but the latest `keep` assistant turns, and the applied edit."""
    keep = edit.get("keep") or DEFAULT_KEEP_THINKING
    if keep == "all" or keep.get("type") == "all":
        return None
    messages = body["messages"]
    turns = _assistant_turns(messages)
    old = {i for turn in turns[:max(0, len(turns) - keep["value"])] for i in turn}
    thinking = [i for i in sorted(old) if any(b.get("type") in THINKING_BLOCKS for b in _blocks(messages[i]))]
    if not thinking:
        return None
    cut = [{**m, "content": [b for b in _blocks(m) if b.get("type") not in THINKING_BLOCKS]} if i in old else m
           for i, m in enumerate(messages)]
    edited = {**body, "messages": [m for m in cut if m["content"]]}
    cleared_turns = sum(1 for turn in turns if set(turn) & set(thinking))
    return edited, {"type": CLEAR_THINKING, "cleared_thinking_turns": cleared_turns,
                    "cleared_input_tokens": prompt_tokens(body) - prompt_tokens(edited)}


_CLEARERS = {CLEAR_TOOL_USES: clear_tool_uses, CLEAR_THINKING: clear_thinking}


def _clear_uses(message: dict[str, Any], cleared: dict[str, Any], empty: set[str]) -> dict[str, Any]:
    if not isinstance(message.get("content"), list):
        return message
    blocks = []
    for block in message["content"]:
        if block.get("type") == "tool_result" and block.get("tool_use_id") in cleared:
            block = {**block, "content": API_CLEARED}
        elif block.get("type") == "tool_use" and block.get("id") in empty:
            block = {**block, "input": {}}
        blocks.append(block)
    return {**message, "content": blocks}


def _assistant_turns(messages: list[dict[str, Any]]) -> list[list[int]]:
    """The indices of the assistant messages, by turn (consecutive assistant messages are one turn)."""
    turns: list[list[int]] = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            if turns and turns[-1][-1] == i - 1:
                turns[-1].append(i)
            else:
                turns.append([i])
    return turns


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def _summary(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "compaction" and isinstance(block.get("content"), str)
