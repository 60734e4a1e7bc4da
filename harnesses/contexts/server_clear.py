"""The whole log, every call, and the API clears old tool results itself: the request asks for the API's context
editing (`clear_tool_uses_20250919`; with thinking on, `clear_thinking_20251015` first), so the client keeps its
conversation whole and the server replaces all but the latest `keep` results with a placeholder once the prompt
passes `trigger_tokens`. What it cleared comes back in each response's `context_management.applied_edits`, logged.

The client-side twin is `clear_tool_results`. Guide: https://platform.claude.com/docs/en/build-with-claude/context-editing
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from harnesses.base import ContextStrategy, ModelRequest
from harnesses.messages import events_to_messages, with_cache_breakpoint
from stores.base import Event

BETA = "context-management-2025-06-27"
THINKING_ON = ("enabled", "adaptive")


class ServerClearContext(ContextStrategy):
    name = "server_clear"

    def __init__(self, trigger_tokens: int = 3000, keep: int = 5, clear_at_least: int = 0,
                 exclude_tools: Sequence[str] = (), clear_tool_inputs: bool = False,
                 thinking: Mapping[str, Any] | None = None, keep_thinking_turns: int = 1):
        for key, value, least in (("trigger_tokens", trigger_tokens, 1), ("keep", keep, 0),
                                  ("clear_at_least", clear_at_least, 0), ("keep_thinking_turns", keep_thinking_turns, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"context.{key}={value!r}; valid: a whole number >= {least}")
        self.edit = {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": trigger_tokens},
                     "keep": {"type": "tool_uses", "value": keep},
                     "clear_at_least": {"type": "input_tokens", "value": clear_at_least},
                     "exclude_tools": list(exclude_tools), "clear_tool_inputs": bool(clear_tool_inputs)}
        self.thinking, self.keep_thinking_turns = thinking, keep_thinking_turns

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        return with_cache_breakpoint(events_to_messages(events))

    def shape(self, request: ModelRequest) -> ModelRequest:
        thinking = request.options.get("thinking") or self.thinking or {}
        clear_thinking = [{"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": self.keep_thinking_turns}}]
        edits = [*(clear_thinking if thinking.get("type") in THINKING_ON else []), self.edit]
        return with_edits(request, edits, BETA)


def with_edits(request: ModelRequest, edits: list[dict[str, Any]], beta: str) -> ModelRequest:
    """`request` asking for the API's context management `edits`, with the beta header they need."""
    options = {**request.options, "context_management": {"edits": edits}}
    return dataclasses.replace(request, options=options, betas=tuple(dict.fromkeys((*request.betas, beta))))
