"""Acknowledged writes, recorded outside the store, so a fault experiment can prove none was lost.

A worker wraps its store in `AckedStore`: after each append the store acknowledged, one line names
the session, the positions and a digest of each event. After the run (store restarts included),
`lost_events` checks every acknowledged event against the store. A write that was cut before its
acknowledgement is not recorded, which is right: nobody was told it happened.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sandboxes.journal import append_line
from stores.base import Event, SessionStore


def digest(event: Event) -> str:
    return hashlib.sha256(json.dumps([event.type, event.data], sort_keys=True, default=str).encode()).hexdigest()[:16]


class AckedStore:
    """Every SessionStore method of `inner`; appends that return are recorded in `path`."""

    def __init__(self, inner: SessionStore, path: str | Path):
        self.inner, self.path = inner, Path(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        length = await self.inner.append(session_id, events, expect=expect)
        append_line(self.path, {"session": session_id, "first": length - len(events), "digests": [digest(e) for e in events]})
        return length


@dataclass(frozen=True, slots=True)
class LostEvent:
    session_id: str
    position: int
    detail: str

    def __str__(self) -> str:
        return f"session {self.session_id}, position {self.position}: {self.detail}"


async def lost_events(store: SessionStore, path: str | Path) -> tuple[int, list[LostEvent]]:
    """(acknowledged events checked, those the store no longer holds as acknowledged)."""
    acked: dict[str, dict[int, str]] = {}
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            entry = json.loads(line)
            positions = acked.setdefault(entry["session"], {})
            positions.update({entry["first"] + i: d for i, d in enumerate(entry["digests"])})
    lost = []
    for session_id, positions in acked.items():
        stored = {e.position: digest(e) for e in await store.events(session_id)}
        for position, expected in sorted(positions.items()):
            if position not in stored:
                lost.append(LostEvent(session_id, position, "acknowledged, but missing from the store"))
            elif stored[position] != expected:
                lost.append(LostEvent(session_id, position, "acknowledged, but the store holds a different event there"))
    return sum(map(len, acked.values())), lost
