"""The whole log, every call, and the API compacts it itself: the request asks for server compaction
(`compact_20260112`, beta `compact-2026-01-12`), so past `trigger_tokens` the response starts with a `compaction`
block (the summary), logged with the rest of the response. The log is sent whole, compaction blocks included, and
the server reads it from the last compaction block on.

The client-side twin is `compaction`. Guide: https://platform.claude.com/docs/en/build-with-claude/compaction
"""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.base import ContextStrategy, ModelRequest
from harnesses.contexts.server_clear import with_edits
from harnesses.messages import events_to_messages, with_cache_breakpoint
from stores.base import Event

BETA = "compact-2026-01-12"


class ServerCompactionContext(ContextStrategy):
    name = "server_compaction"

    def __init__(self, trigger_tokens: int = 3000, instructions: str | None = None):
        if isinstance(trigger_tokens, bool) or not isinstance(trigger_tokens, int) or trigger_tokens < 1:
            raise ValueError(f"context.trigger_tokens={trigger_tokens!r}; valid: a whole number >= 1 (the API's models take "
                             "50000 or more; the emulator's stand-ins 1000 or more)")
        # never paused: a paused answer (the block alone) holds no tool use, and the loop would end the session on it
        self.edit: dict[str, Any] = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": trigger_tokens},
                                     "pause_after_compaction": False}
        if instructions is not None:
            self.edit["instructions"] = instructions

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        return with_cache_breakpoint(events_to_messages(events))

    def shape(self, request: ModelRequest) -> ModelRequest:
        return with_edits(request, [self.edit], BETA)
