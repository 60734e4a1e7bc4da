"""A context strategy defined outside harnesses/, as a user would add one: the task, the first `first` turns
and the last `last` turns, with the turns between shown as a calls block of harnesses/contexts/vocabulary.py
(each hidden tool call with the head of its output). Nothing in harnesses/ knows it.

    harnesslab run context._target_=tests.harnesses.custom_context.FirstAndLastContext
"""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.base import ContextStrategy
from harnesses.contexts.vocabulary import OMITTED, CallRecord, calls_block
from harnesses.messages import events_to_messages, with_cache_breakpoint
from stores.base import Event


class FirstAndLastContext(ContextStrategy):
    name = "first_and_last"

    def __init__(self, first: int = 2, last: int = 4, output_chars: int = 2000):
        if first < 0 or last < 1 or output_chars < 0:
            raise ValueError(f"context.first must be >= 0, last >= 1 and output_chars >= 0; got {first}, {last}, {output_chars}")
        self.first, self.last, self.output_chars = first, last, output_chars

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        messages = events_to_messages(events)
        starts = [i for i, m in enumerate(messages) if m["role"] == "assistant"]  # each turn begins with a response
        if len(starts) <= self.first + self.last:
            return with_cache_breakpoint(messages)
        head, middle, tail = messages[:starts[self.first]], messages[starts[self.first]:starts[-self.last]], messages[starts[-self.last]:]
        hidden = len(starts) - self.first - self.last
        block = calls_block(f"[{hidden} {OMITTED} in the middle are not shown; their tool calls, one per line]",
                            self._records(middle))
        head[-1] = {**head[-1], "content": [*head[-1]["content"], {"type": "text", "text": block}]}
        return with_cache_breakpoint([*head, *tail])

    def _records(self, messages: list[dict[str, Any]]) -> list[CallRecord]:
        results = {b["tool_use_id"]: b for m in messages if m["role"] == "user" for b in m["content"] if b["type"] == "tool_result"}
        uses = [b for m in messages if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]
        return [CallRecord(u["name"], u.get("input", {}), bool(results[u["id"]].get("is_error")),
                           _text(results[u["id"]])[:self.output_chars]) for u in uses if u["id"] in results]


def _text(block: dict[str, Any]) -> str:
    content = block.get("content", "")
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if isinstance(p, dict))
