"""The coupled ("pet") harness: the original design the seed moved away from.

Session, harness and sandbox live together: the sandbox is provisioned, and the task's environment
prepared in it, before the first model call; every event is also written into the sandbox, where the
session lives; and losing the sandbox loses the session, which fails instead of getting new hands.
Otherwise it is the decoupled harness: the same loop, tools, model and context.
"""
from __future__ import annotations

import json

from harnesses.decoupled import DecoupledHarness
from harnesses.hands import Hands, PetLost
from harnesses.log import SessionLog
from sandboxes.base import SandboxLost
from stores.base import Event

LOG_DIR = ".session"


class CoupledHarness(DecoupledHarness):
    name = "coupled"

    def _hands(self, session: SessionLog) -> Hands:
        return Hands(self.sandboxes, session, replace_lost=False, fetch=self._fetch(session))

    async def _before_loop(self, session: SessionLog, hands: Hands) -> None:
        sandbox = await hands.get()  # provisioned and prepared before the model is called

        async def keep_in_sandbox(events: list[Event]) -> None:
            for event in events:
                path = f"{LOG_DIR}/{event.position:06d}.json"
                record = {"type": event.type, "data": event.data, "ts": event.ts, "v": event.v}
                try:
                    await sandbox.execute("write_file", {"path": path, "content": json.dumps(record)})
                except SandboxLost as exc:
                    raise PetLost(f"the sandbox holding this session was lost ({exc})") from None

        await keep_in_sandbox(session.events)
        session.observers.append(keep_in_sandbox)
