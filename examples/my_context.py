"""A context strategy: the task, the first turn and the last `last` turns; the turns between them are shown as
a calls block (harnesses/contexts/vocabulary.py), so the offline brain knows what they did.

    PYTHONPATH=. harnesslab run context._target_=examples.my_context.KeepEnds tasks.only=[find_needle]
"""
from __future__ import annotations

from harnesses.base import ContextStrategy
from harnesses.contexts.vocabulary import OMITTED, CallRecord, calls_block
from harnesses.messages import events_to_messages, with_cache_breakpoint


class KeepEnds(ContextStrategy):
    name = "keep_ends"

    def __init__(self, last: int = 3):
        if last < 1:
            raise ValueError(f"last must be at least 1, got {last}")
        self.last = last

    async def build(self, events):
        messages = events_to_messages(events)
        starts = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if len(starts) <= self.last + 1:
            return with_cache_breakpoint(messages)
        cut = starts[-self.last]
        head, middle, tail = messages[:starts[1]], messages[starts[1]:cut], messages[cut:]
        results = {b["tool_use_id"]: b for m in middle for b in m["content"] if b["type"] == "tool_result"}
        records = [CallRecord(b["name"], b["input"], results[b["id"]]["is_error"], results[b["id"]]["content"])
                   for m in middle for b in m["content"] if b["type"] == "tool_use" and b["id"] in results]
        hidden = len(starts) - self.last - 1
        note = calls_block(f"[{hidden} {OMITTED} are not shown; their tool calls, one per line]", records)
        head[-1] = {**head[-1], "content": [*head[-1]["content"], {"type": "text", "text": note}]}
        return with_cache_breakpoint([*head, *tail])
