"""Waking the brain: a session with an open turn gets a harness wake, one at a time per session, until its log
says the turn is over. The harness is its environment's kind's: on a cloud environment the configured one, whose
hands are harnesslab's sandboxes; on a self-hosted one the same harness over its worker (managed/hands.py). Nothing
is kept but the wakes under way: a server started again on the same store wakes every session whose log has a turn
running (`resume`); one that waits for its worker is woken by the worker's result."""
from __future__ import annotations

import asyncio
import logging
from typing import Mapping

from harnesses.base import Harness
from managed.events import ENVIRONMENT_TYPE
from managed.records import KIND
from managed.sessions import status
from stores.base import SessionStore

log = logging.getLogger(__name__)


class Driver:
    def __init__(self, harnesses: Mapping[str, Harness], store: SessionStore):
        """`harnesses`: the harness for each environment type (cloud, self_hosted)."""
        self.harnesses, self.store = harnesses, store
        self.wakes: dict[str, asyncio.Task] = {}
        self.again: set[str] = set()  # sessions whose log changed while a wake ran: wake once more when it returns

    def wake(self, session_id: str) -> None:
        running = self.wakes.get(session_id)
        if running is not None and not running.done():
            self.again.add(session_id)
            return
        self.wakes[session_id] = asyncio.create_task(self._drive(session_id))

    async def resume(self) -> int:
        """Wake every session of the store whose turn is open; how many."""
        woken = 0
        for info in await self.store.sessions(status="active"):
            if info.meta.get(KIND) == "session" and info.length > 1 and status(await self.store.events(info.id)) == "running":
                self.wake(info.id)
                woken += 1
        return woken

    async def close(self) -> None:
        for task in self.wakes.values():
            task.cancel()
        await asyncio.gather(*self.wakes.values(), return_exceptions=True)

    async def _drive(self, session_id: str) -> None:
        """A harness conflicts with whoever appended meanwhile (a user message): the log decides, so wake again."""
        harness = None
        while True:
            self.again.discard(session_id)
            try:
                harness = harness or await self._harness_of(session_id)
                outcome = await harness.wake(session_id)
            except Exception:  # the harness fails sessions for their own faults; this is the store's, or a bug
                log.exception("wake of session %s failed; it stays open for the next wake", session_id)
                return
            if outcome.status != "conflict" and session_id not in self.again:
                return

    async def _harness_of(self, session_id: str) -> Harness:
        meta = (await self.store.session(session_id)).meta
        return self.harnesses[meta.get(ENVIRONMENT_TYPE, "cloud")]
