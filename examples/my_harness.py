"""A harness: the decoupled harness, printing each wake and how it ended.

    PYTHONPATH=. harnesslab run harness._target_=examples.my_harness.LoggingHarness
"""
from __future__ import annotations

import sys

from harnesses.base import Outcome
from harnesses.decoupled import DecoupledHarness


class LoggingHarness(DecoupledHarness):
    name = "logging"

    async def wake(self, session_id: str) -> Outcome:
        print(f"wake {session_id[:8]}", file=sys.stderr)
        outcome = await super().wake(session_id)
        print(f"{session_id[:8]} {outcome.status} {outcome.reason}".rstrip(), file=sys.stderr)
        return outcome
