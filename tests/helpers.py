"""Shared test doubles."""
from __future__ import annotations

from typing import Awaitable, Callable

from experiments.tasks import policy_book
from harnesses.models.scripted import ScriptedModel


class KillAfter(ScriptedModel):
    """The task policies, except that after the `after`-th answer `kill()` runs: the hands die mid-session."""

    def __init__(self, kill: Callable[[], Awaitable[None]], after: int = 2):
        super().__init__(policy_book())
        self.kill, self.after, self.calls = kill, after, 0

    async def respond(self, request):
        self.calls += 1
        if self.calls == self.after:
            await self.kill()
        return await super().respond(request)
