"""The request's parameters honoured in its answer: tool_choice and disable_parallel_tool_use constrain what the
offline brain answered, stop_sequences and max_tokens cut it, thinking puts a thinking block before it
(harnesses/emulator/thinking.py), and stop_reason, stop_sequence and output_tokens say what happened, as the API's
do. Streaming and non-streaming answers are built from the same Answer.

Sources: https://docs.claude.com/en/api/messages (max_tokens, stop_sequences, stop_reason),
https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use (tool_choice) and
#parallel-tool-use (disable_parallel_tool_use),
https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size (thinking is
cut by its budget, counts towards max_tokens and is billed as output tokens).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from harnesses.contexts.vocabulary import estimate_tokens
from harnesses.emulator import thinking

_PLACEHOLDERS = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


@dataclass(frozen=True, slots=True)
class Answer:
    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def honour(content: list[dict[str, Any]], body: dict[str, Any], rng: random.Random) -> Answer:
    """The brain's `content` as the request's parameters make it (`rng`, seeded by the request, makes any choice)."""
    content = constrained(content, body.get("tool_choice") or {"type": "auto"}, body.get("tools") or [], rng)
    content, sequence = cut_at_stop_sequence(content, body.get("stop_sequences") or [])
    thought, thought_tokens = _thought(content, body, rng)
    content, cut = cut_to_max_tokens(content, body["max_tokens"] - thought_tokens)
    content = [*thought, *content]
    if cut:
        return Answer(content, "max_tokens", None, body["max_tokens"])
    reason = "stop_sequence" if sequence else "tool_use" if _uses(content) else "end_turn"
    return Answer(content, reason, sequence, thought_tokens + output_tokens(content[len(thought):]))


def _thought(content: list[dict[str, Any]], body: dict[str, Any], rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """The thinking block the answer starts with (none if thinking is off or none fits), and the output tokens it
    bills: those of its whole text, cut to the budget, whether it is shown, omitted or redacted."""
    limit = thinking.budget(body)
    if limit is None:
        return [], 0
    full = {"type": "thinking", "thinking": thinking.reasoning(body["messages"], content)}
    size = _longest_fitting([], full, limit, "thinking")
    if not size:
        return [], 0
    text = full["thinking"][:size]
    return [thinking.thinking_block(text, body["thinking"], rng)], output_tokens([{**full, "thinking": text}])


def output_tokens(content: list[dict[str, Any]]) -> int:
    return estimate_tokens(content) if content else 0


def constrained(content: list[dict[str, Any]], choice: dict[str, Any], tools: Sequence[dict[str, Any]],
                rng: random.Random) -> list[dict[str, Any]]:
    """`none` takes the tool uses out; `any` keeps only tool uses, `tool` only those of its tool (a forced tool use
    starts the answer, so no text comes before it), making one up if the brain made none; with
    disable_parallel_tool_use, one tool use at most."""
    kind, uses = choice["type"], _uses(content)
    if kind == "none" and uses:
        content = [b for b in content if b["type"] != "tool_use"] or [{"type": "text", "text": (
            f"I would use the {uses[0]['name']} tool next, but this answer may not use tools (tool_choice none).")}]
    elif kind in ("any", "tool"):
        content = [b for b in uses if kind == "any" or b["name"] == choice["name"]] or [_forced_use(choice, tools, rng)]
    if choice.get("disable_parallel_tool_use") and len(_uses(content)) > 1:
        first = next(b for b in content if b["type"] == "tool_use")
        content = [b for b in content if b["type"] != "tool_use" or b is first]
    return content


def cut_at_stop_sequence(content: list[dict[str, Any]], sequences: Sequence[str]) -> tuple[list[dict[str, Any]], str | None]:
    """The content up to the first stop sequence any text block holds (the text cut before it), and that sequence."""
    sequences = [s for s in sequences if s]
    for n, block in enumerate(content):
        if block["type"] != "text" or not sequences:
            continue
        found = [(block["text"].find(s), s) for s in sequences if s in block["text"]]
        if found:
            at, sequence = min(found, key=lambda hit: hit[0])
            kept = [{**block, "text": block["text"][:at]}] if at else []
            return content[:n] + kept, sequence
    return content, None


def cut_to_max_tokens(content: list[dict[str, Any]], max_tokens: int) -> tuple[list[dict[str, Any]], bool]:
    """The content that fits in `max_tokens` output tokens, and whether any had to go: a text block is cut, a
    tool_use that does not fit whole is left out (its input would not be JSON)."""
    if output_tokens(content) <= max_tokens:
        return content, False
    kept: list[dict[str, Any]] = []
    for block in content:
        if output_tokens([*kept, block]) <= max_tokens:
            kept.append(block)
            continue
        if block["type"] == "text":
            size = _longest_fitting(kept, block, max_tokens, "text")
            kept += [{**block, "text": block["text"][:size]}] if size else []
        break
    return kept, True


def _longest_fitting(kept: list[dict[str, Any]], block: dict[str, Any], max_tokens: int, field: str) -> int:
    """The most characters of `block`'s `field` (its text) that fit after `kept` (a binary search: the count is
    monotonic)."""
    low, high = 0, len(block[field])
    while low < high:
        middle = (low + high + 1) // 2
        if output_tokens([*kept, {**block, field: block[field][:middle]}]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


def _uses(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in content if b["type"] == "tool_use"]


def _forced_use(choice: dict[str, Any], tools: Sequence[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """A tool use the brain did not make but tool_choice forces: its tool (any: one drawn), the input its schema
    requires, with placeholder values."""
    tool = next(t for t in tools if t.get("name") == choice["name"]) if choice["type"] == "tool" else rng.choice(list(tools))
    schema = tool.get("input_schema") or {}
    properties = schema.get("properties") or {}
    return {"type": "tool_use", "id": f"toolu_emu_{rng.getrandbits(64):016x}", "name": tool.get("name", tool.get("type")),
            "input": {name: _placeholder(properties.get(name) or {}) for name in schema.get("required") or []}}


def _placeholder(prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    if prop.get("enum"):
        return prop["enum"][0]
    kind = prop.get("type")
    return _PLACEHOLDERS.get(kind[0] if isinstance(kind, list) and kind else kind)
