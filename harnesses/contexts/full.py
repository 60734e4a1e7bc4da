"""The whole log, every time, with one prompt-cache breakpoint at its end (a stable, growing prefix)."""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.base import ContextStrategy
from harnesses.messages import events_to_messages, with_cache_breakpoint
from stores.base import Event


class FullContext(ContextStrategy):
    name = "full"

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        return with_cache_breakpoint(events_to_messages(events))
