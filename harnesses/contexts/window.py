"""The task and the last `turns` exchanges of the log: bounded, but what slid out is gone from view.

A turn is one model response with the tool results (or user message) that answer it. The window moves
by whole turns, so every tool_result still follows its tool_use; the task (the first user message) is
always kept, with a note saying how many turns are not shown. The cache breakpoint sits at the end as
in `full`, but once the window slides the prefix after the task changes on every call.
"""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.base import ContextStrategy
from harnesses.contexts.vocabulary import OMITTED
from harnesses.messages import events_to_messages, with_cache_breakpoint
from stores.base import Event


class WindowContext(ContextStrategy):
    name = "window"

    def __init__(self, turns: int = 10):
        if turns < 1:
            raise ValueError(f"context.turns must be at least 1, got {turns}")
        self.turns = turns

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        return with_cache_breakpoint(self.view(events))

    def view(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The task and the last turns, without cache marks."""
        messages = events_to_messages(events)
        starts = [i for i, m in enumerate(messages) if m["role"] == "assistant"]  # each turn begins with a response
        if len(starts) <= self.turns:
            return messages
        note = {"type": "text", "text": self.note(len(starts) - self.turns)}
        return [{"role": "user", "content": [*messages[0]["content"], note]}, *messages[starts[-self.turns]:]]

    def note(self, omitted: int) -> str:
        """The omission note of harnesses/contexts/vocabulary.py: it must contain OMITTED."""
        return f"[{omitted} {OMITTED} of this session are not shown: the context keeps the last {self.turns}]"
