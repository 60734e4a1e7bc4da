"""In-process store for unit tests and benchmarks: same contract, no durability across processes."""
from __future__ import annotations

import uuid
from typing import Any, Sequence

from stores.base import (
    SESSION_CREATED,
    Event,
    SessionInfo,
    SessionExists,
    SessionNotFound,
    SessionStore,
    check_expect,
    check_session_id,
    decode_event,
    encode_row,
    slice_bounds,
    status_after,
)


class MemoryStore(SessionStore):
    """Keeps events as encoded JSON so callers can never mutate what was stored."""

    def __init__(self) -> None:
        self._logs: dict[str, list[tuple[str, str, float, int]]] = {}
        self._info: dict[str, SessionInfo] = {}

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        session_id = uuid.uuid4().hex if session_id is None else session_id
        check_session_id(session_id)
        if session_id in self._info:
            raise SessionExists(session_id)
        row = encode_row(session_id, Event(SESSION_CREATED, dict(meta)))  # validated before anything is created
        self._logs[session_id] = [row]
        self._info[session_id] = SessionInfo(session_id, dict(meta), 1, "active", row[2], row[2])
        return session_id

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        check_session_id(session_id)
        log, info = self._log(session_id), self._info[session_id]
        check_expect(session_id, expect, len(log))
        rows = [encode_row(session_id, e) for e in events]
        log.extend(rows)
        updated = rows[-1][2] if rows else info.updated  # a session's times come from its log
        self._info[session_id] = SessionInfo(
            session_id, info.meta, len(log), status_after((e.type for e in events), info.status), info.created, updated
        )
        return len(log)

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        check_session_id(session_id)
        log = self._log(session_id)
        lo, hi = slice_bounds(len(log), start, stop)
        return [decode_event(session_id, p, *log[p]) for p in range(lo, hi)]

    async def session(self, session_id: str) -> SessionInfo:
        check_session_id(session_id)
        self._log(session_id)
        return self._info[session_id]

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        found = [i for i in self._info.values() if status is None or i.status == status]
        return found[:limit] if limit is not None else found

    def _log(self, session_id: str) -> list[tuple[str, str, float, int]]:
        try:
            return self._logs[session_id]
        except KeyError:
            raise SessionNotFound(session_id) from None
