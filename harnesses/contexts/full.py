"""The whole log, every time."""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.messages import events_to_messages
from stores.base import Event


class FullContext:
    name = "full"

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        return events_to_messages(events)
