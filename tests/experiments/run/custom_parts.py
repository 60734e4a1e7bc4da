"""A user's own parts, living outside harnesslab's packages, plugged in with one `_target_` override."""
from __future__ import annotations

from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness


class CountingContext(FullContext):
    builds = 0

    async def build(self, events):
        CountingContext.builds += 1
        return await super().build(events)


class NamedHarness(DecoupledHarness):
    """Declares its name: runs record it as `named`."""

    name = "named"


class PlainHarness(DecoupledHarness):
    """Declares no name of its own (DecoupledHarness's is not its): runs record its import path."""


class PickyContext(FullContext):
    """Takes one option, which must be positive."""

    def __init__(self, keep: int = 1):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
