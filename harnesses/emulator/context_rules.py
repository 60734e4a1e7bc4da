"""Rules on the API's server-side context management, which only beta requests may ask for (a body with
`context_management` and no beta is refused by known_fields, as the API refuses a field it does not define):
the edits and their fields, the beta header each needs, compaction blocks and what sends them back.

Sources: the context-editing and compaction guides, and anthropic.types.beta's BetaContextManagementConfigParam,
BetaClearToolUses20250919EditParam, BetaClearThinking20251015EditParam, BetaCompact20260112EditParam,
BetaCompactionBlockParam and MessageCreateParams.compaction.
"""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.emulator import schema
from harnesses.emulator.context_edits import CLEAR_THINKING, CLEAR_TOOL_USES, COMPACT
from harnesses.emulator.rules import Request, invalid, rule, unknown_tag

EDITING = "https://platform.claude.com/docs/en/build-with-claude/context-editing"
COMPACTION = "https://platform.claude.com/docs/en/build-with-claude/compaction"
EDIT_BETAS = {CLEAR_TOOL_USES: "context-management-2025-06-27", CLEAR_THINKING: "context-management-2025-06-27",
              COMPACT: "compact-2026-01-12"}
COMPACTION_BLOCK_FIELDS = ("type", "content", "encrypted_content", "signature", "tool_changes", "cache_control")


@rule("anthropic.types.beta.BetaContextManagementConfigParam", loose=True)
def context_management_edits(request: Request) -> None:
    """context_management is {"edits": [...]}, each edit one of the three types, with that type's fields only."""
    config = request.body.get("context_management")
    if config is None:
        return
    if not isinstance(config, dict):
        raise invalid("context_management: Input should be a valid dictionary")
    _no_extra("context_management", config, ("edits",))
    edits = config.get("edits", [])
    if not isinstance(edits, list):
        raise invalid("context_management.edits: Input should be a valid list")
    for i, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind not in schema.edit_fields():
            raise unknown_tag(f"context_management.edits.{i}", kind, list(schema.edit_fields()))
        _no_extra(f"context_management.edits.{i}.{kind}", edit, schema.edit_fields()[kind])


@rule(EDITING + "; " + COMPACTION)
def context_management_beta(request: Request) -> None:
    """Each edit needs its beta header: context-management-2025-06-27 for clearing, compact-2026-01-12 for compaction."""
    for i, edit in enumerate(request.edits):
        needed = EDIT_BETAS[edit["type"]]
        if needed not in request.betas:
            raise invalid(f"context_management.edits.{i}: the `{edit['type']}` edit requires the `{needed}` beta; "
                          f"send the header `anthropic-beta: {needed}`")


@rule("anthropic.types.beta.BetaClearToolUses20250919EditParam; " + EDITING, loose=True)
def clear_tool_uses_config(request: Request) -> None:
    """trigger is input_tokens or tool_uses (value >= 1), keep tool_uses (>= 0), clear_at_least input_tokens (>= 0);
    exclude_tools a list of names; clear_tool_inputs a boolean or a list of names."""
    for i, edit in _edits(request, CLEAR_TOOL_USES):
        path = f"context_management.edits.{i}.{CLEAR_TOOL_USES}"
        _counter(f"{path}.trigger", edit.get("trigger"), ("input_tokens", "tool_uses"), 1)
        _counter(f"{path}.keep", edit.get("keep"), ("tool_uses",), 0)
        _counter(f"{path}.clear_at_least", edit.get("clear_at_least"), ("input_tokens",), 0)
        _names(f"{path}.exclude_tools", edit.get("exclude_tools"))
        inputs = edit.get("clear_tool_inputs")
        if not isinstance(inputs, bool):
            _names(f"{path}.clear_tool_inputs", inputs, "a valid boolean or a list of tool names")


@rule("anthropic.types.beta.BetaClearThinking20251015EditParam; " + EDITING, loose=True)
def clear_thinking_config(request: Request) -> None:
    """keep is "all", {"type": "all"} or {"type": "thinking_turns", "value": N >= 0}."""
    for i, edit in _edits(request, CLEAR_THINKING):
        keep = edit.get("keep")
        if keep is None or keep == "all" or isinstance(keep, dict) and keep.get("type") == "all" and len(keep) == 1:
            continue
        _counter(f"context_management.edits.{i}.{CLEAR_THINKING}.keep", keep, ("thinking_turns", "all"), 0)


@rule(EDITING + "#thinking-block-clearing")
def clear_thinking_needs_thinking(request: Request) -> None:
    """clear_thinking_20251015 manages thinking blocks: it needs thinking on."""
    for i, _ in _edits(request, CLEAR_THINKING):
        if not request.thinking:
            raise invalid(f"context_management.edits.{i}: the `{CLEAR_THINKING}` strategy requires `thinking` to be "
                          "enabled or adaptive")


@rule(EDITING + "#combining-strategies")
def clear_thinking_first(request: Request) -> None:
    """With both clearing strategies, clear_thinking_20251015 is listed before clear_tool_uses_20250919."""
    kinds = [edit["type"] for edit in request.edits]
    if CLEAR_THINKING in kinds and CLEAR_TOOL_USES in kinds and kinds.index(CLEAR_THINKING) > kinds.index(CLEAR_TOOL_USES):
        raise invalid(f"context_management.edits: `{CLEAR_THINKING}` must be listed before `{CLEAR_TOOL_USES}` "
                      "when both are used")


@rule("anthropic.types.beta.BetaCompact20260112EditParam; " + COMPACTION, loose=True)
def compact_config(request: Request) -> None:
    """trigger is {"type": "input_tokens", "value": N}; instructions a string; pause_after_compaction a boolean."""
    for i, edit in _edits(request, COMPACT):
        path = f"context_management.edits.{i}.{COMPACT}"
        _counter(f"{path}.trigger", edit.get("trigger"), ("input_tokens",), 1)
        if edit.get("instructions") is not None and not isinstance(edit["instructions"], str):
            raise invalid(f"{path}.instructions: Input should be a valid string")
        if not isinstance(edit.get("pause_after_compaction", False), bool):
            raise invalid(f"{path}.pause_after_compaction: Input should be a valid boolean")


@rule(COMPACTION + "#how-compaction-works")
def compact_trigger_minimum(request: Request) -> None:
    """A compaction trigger is at least the model's minimum (50,000 input tokens on the API's models)."""
    least = request.limits.compaction_min_trigger
    for i, edit in _edits(request, COMPACT):
        value = (edit.get("trigger") or {}).get("value")
        if value is not None and value < least:
            raise invalid(f"context_management.edits.{i}.{COMPACT}.trigger.value: Input should be greater than or "
                          f"equal to {least}")


@rule("anthropic.types.beta.BetaCompactionBlockParam", loose=True)
def compaction_block_shape(request: Request) -> None:
    """A compaction block comes from the assistant; its content is a summary (not empty) or null, with
    BetaCompactionBlockParam's fields only."""
    for block in request.of_type("compaction"):
        _no_extra(f"{block.path}.compaction", block.block, COMPACTION_BLOCK_FIELDS)
        if block.role != "assistant":
            raise invalid(f"{block.path}: `compaction` blocks may only appear in `assistant` messages")
        content = block.block.get("content")
        if content is not None and not (isinstance(content, str) and content):
            raise invalid(f"{block.path}.compaction.content: Input should be a non-empty string or null")


@rule(COMPACTION)
def compaction_blocks_declared(request: Request) -> None:
    """A request that sends a compaction block back declares the compact_20260112 edit that made it."""
    declared = any(edit["type"] == COMPACT for edit in request.edits)
    block = next((b for b in request.of_type("compaction") if b.block.get("content") is not None), None)
    if block is not None and not declared:
        raise invalid(f"{block.path}: a `compaction` block requires the `{COMPACT}` edit in `context_management`")


@rule("anthropic.types.beta.message_create_params.MessageCreateParams.compaction")
def compaction_request(request: Request) -> None:
    """The top-level `compaction` ({"type": "summarize"}) cannot be combined with context_management (count_tokens takes
    both, and ignores `compaction`)."""
    config = request.body.get("compaction")
    if config is None:
        return
    if not isinstance(config, dict) or config.get("type") != "summarize":
        raise unknown_tag("compaction", config.get("type") if isinstance(config, dict) else None, ("summarize",))
    _no_extra("compaction.summarize", config, ("type", "instructions"))
    if request.endpoint == "messages" and request.body.get("context_management") is not None:
        raise invalid("compaction: cannot be combined with `context_management`")


def _edits(request: Request, kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, edit) for i, edit in enumerate(request.edits) if edit["type"] == kind]


def _no_extra(path: str, value: dict[str, Any], allowed: Sequence[str] | frozenset[str]) -> None:
    extra = next((key for key in value if key not in allowed), None)
    if extra is not None:
        raise invalid(f"{path}.{extra}: Extra inputs are not permitted")


def _counter(path: str, value: Any, kinds: Sequence[str], minimum: int) -> None:
    """A {"type": KIND, "value": N} object (trigger, keep, clear_at_least), or absent."""
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in kinds:
        raise unknown_tag(path, kind, kinds)
    _no_extra(f"{path}.{kind}", value, ("type", "value"))
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, int):
        raise invalid(f"{path}.{kind}.value: Input should be a valid integer")
    if number < minimum:
        raise invalid(f"{path}.{kind}.value: Input should be greater than or equal to {minimum}")


def _names(path: str, value: Any, expected: str = "a list of tool names") -> None:
    if value is not None and not (isinstance(value, list) and all(isinstance(n, str) for n in value)):
        raise invalid(f"{path}: Input should be {expected}")
