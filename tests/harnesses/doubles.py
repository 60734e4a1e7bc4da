"""Test doubles shared by the harness tests: a store whose appends can be held or broken, and slow work."""
from __future__ import annotations

import asyncio

from stores.base import StoreUnavailable
from stores.memory import MemoryStore


class GatedStore(MemoryStore):
    """Appends of events whose type is in `held` wait for `release`; those in `broken` fail."""

    def __init__(self, held=(), broken=()):
        super().__init__()
        self.held, self.broken, self.release = set(held), set(broken), asyncio.Event()

    async def append(self, session_id, events, *, expect=None):
        if events[0].type in self.held:
            await self.release.wait()
        if events[0].type in self.broken:
            raise StoreUnavailable(f"cannot append {events[0].type}")
        return await super().append(session_id, events, expect=expect)


async def sleep_noting_cancel(seconds: float, cancelled: asyncio.Event) -> None:
    """Sleep; if cancelled meanwhile, set `cancelled` (and stay cancelled)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        cancelled.set()
        raise
