"""A user's own part, living outside harnesslab's packages, plugged in with one `_target_` override."""
from __future__ import annotations

from harnesses.contexts.full import FullContext


class CountingContext(FullContext):
    builds = 0

    async def build(self, events):
        CountingContext.builds += 1
        return await super().build(events)
