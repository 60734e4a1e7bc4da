"""The whole conversation, with all but the latest `keep` tool results replaced by a short stub.

Like Anthropic's context editing (clear_tool_uses): the model still sees which tools it called and with
what input, so it can call one again for an output it needs. Results are cleared `batch` at a time:
between clearings the prefix stays the same and is read from the prompt cache. A stub is a cleared
result of harnesses/contexts/vocabulary.py.
"""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.base import ContextStrategy
from harnesses.messages import events_to_messages, with_cache_breakpoint
from harnesses.contexts.vocabulary import CLEARED, estimate_tokens
from stores.base import Event

STUB = CLEARED + " to save context ({tokens} tokens); call the tool again if you need it]"


class ClearToolResultsContext(ContextStrategy):
    name = "clear_tool_results"

    def __init__(self, keep: int = 5, batch: int = 5):
        if keep < 0 or batch < 1:
            raise ValueError(f"context.keep must be >= 0 and context.batch >= 1, got keep={keep}, batch={batch}")
        self.keep, self.batch = keep, batch

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        messages = events_to_messages(events)
        results = [block for m in messages if m["role"] == "user" for block in m["content"] if block["type"] == "tool_result"]
        clear = (max(0, len(results) - self.keep) // self.batch) * self.batch
        cleared = {id(block) for block in results[:clear]}
        return with_cache_breakpoint([
            {**m, "content": [_stub(b) if id(b) in cleared else b for b in m["content"]]} if m["role"] == "user" else m
            for m in messages
        ])


def _stub(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "content": STUB.format(tokens=estimate_tokens(block.get("content", "")))}
