"""Planning a batch of writes against the log, shared by every SQL store's group commit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from stores.base import SessionExists, SessionNotFound, StoreError, check_expect, status_after


@dataclass(frozen=True, slots=True)
class Write:
    session_id: str
    rows: list[tuple[str, str, float, int]]  # encode_row() of each event
    expect: int | None
    meta: str | None = None  # JSON text, set when this write creates the session


@dataclass(slots=True)
class SessionState:
    length: int
    status: str
    meta: str | None = None  # set for a session this batch creates


@dataclass(slots=True)
class Plan:
    outcomes: list[Any] = field(default_factory=list)  # per write: the new length, or its StoreError
    rows: list[tuple] = field(default_factory=list)  # (session_id, position, type, data, ts, v)
    sessions: dict[str, SessionState] = field(default_factory=dict)  # every session the batch changes


def plan_batch(writes: Sequence[Write], stored: Mapping[str, tuple[int, str]]) -> Plan:
    """Apply `writes` in order to the sessions as stored (`id -> (length, status)`, locked by the caller).

    A write that fails its checks (Conflict, unknown or duplicate session) fails alone.
    """
    plan = Plan()
    for write in writes:
        sid = write.session_id
        try:
            state = _state(write, plan.sessions, stored)
            check_expect(sid, write.expect, state.length)
        except StoreError as exc:
            plan.outcomes.append(exc)
            continue
        plan.sessions[sid] = state
        plan.rows.extend((sid, state.length + i, *row) for i, row in enumerate(write.rows))
        state.length += len(write.rows)
        state.status = status_after((row[0] for row in write.rows), state.status)
        plan.outcomes.append(state.length)
    return plan


def _state(write: Write, planned: dict[str, SessionState], stored: Mapping[str, tuple[int, str]]) -> SessionState:
    sid = write.session_id
    if write.meta is not None:
        if sid in planned or sid in stored:
            raise SessionExists(sid)
        return SessionState(0, "active", write.meta)
    if sid in planned:
        return planned[sid]
    if sid not in stored:
        raise SessionNotFound(sid)
    return SessionState(*stored[sid])
