"""Planning a batch of writes against the log, shared by every SQL store's group commit."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

from stores.base import (
    SESSION_CREATED,
    Event,
    SessionExists,
    SessionNotFound,
    StoreError,
    check_expect,
    check_session_id,
    encode_row,
    status_after,
)
from stores.group_commit import GroupCommit

Commit = Callable[[Sequence["Write"]], Awaitable[list[Any]]]  # one outcome per write: its new length or its error


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
    created: float = 0.0  # ts of its session.created event (for a session this batch creates)
    updated: float = 0.0  # ts of its last event: a session's times come from its log, not the clock


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
        if write.rows:
            plan.sessions[sid] = state
            plan.rows.extend((sid, state.length + i, *row) for i, row in enumerate(write.rows))
            state.length += len(write.rows)
            state.status = status_after((row[0] for row in write.rows), state.status)
            state.updated = write.rows[-1][2]
        plan.outcomes.append(state.length)
    return plan


def _state(write: Write, planned: dict[str, SessionState], stored: Mapping[str, tuple[int, str]]) -> SessionState:
    sid = write.session_id
    if write.meta is not None:
        if sid in planned or sid in stored:
            raise SessionExists(sid)
        return SessionState(0, "active", write.meta, created=write.rows[0][2])
    if sid in planned:
        return planned[sid]
    if sid not in stored:
        raise SessionNotFound(sid)
    return SessionState(*stored[sid])


class BatchWriter:
    """`create_session` and `append` for a store that commits batches of Writes in one transaction.

    With group commit, concurrent writes share a batch; without it, each write is its own batch.
    """

    def __init__(self, commit: Commit, group_commit: bool, max_batch: int, in_flight: int = 1):
        """`commit` writes a batch; when it raises because the database refused what a write holds, it has written
        nothing of the batch (one transaction), so commit_apart can split the batch and retry its parts."""
        self._commit_writes = commit
        self._group = GroupCommit(self._commit_apart, max_batch, in_flight) if group_commit else None

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        session_id = uuid.uuid4().hex if session_id is None else session_id
        check_session_id(session_id)
        row = encode_row(session_id, Event(SESSION_CREATED, dict(meta)))
        await self._write(Write(session_id, [row], 0, row[1]))
        return session_id

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        check_session_id(session_id)
        return await self._write(Write(session_id, [encode_row(session_id, e) for e in events], expect))

    async def _drain(self) -> None:
        """Let writes already submitted commit; a store's close() calls this first."""
        if self._group is not None:
            await self._group.drain()

    async def _commit_apart(self, writes: Sequence[Write]) -> list[Any]:
        return await commit_apart(self._commit_writes, writes)

    async def _write(self, write: Write) -> int:
        if self._group is not None:
            return await self._group.submit(write)
        [outcome] = await self._commit_writes([write])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def commit_apart(commit: Commit, writes: Sequence[Write]) -> list[Any]:
    """`commit(writes)`, one transaction for the batch; if the database refuses what one write holds, the batch is
    split in halves, each committed on its own, until that failure is the outcome of the write that caused it alone.

    Raises only what fails the batch whatever it holds (a lost or locked store): retrying that write by write would
    wait on it again and again, and a write that raised StoreUnavailable may have happened.
    """
    try:
        return list(await commit(writes))
    except Exception as exc:
        if not _refused_data(exc):
            raise
        if len(writes) == 1:
            return [exc]
    half = len(writes) // 2  # in order: a session's writes commit in the order they were made
    return await _settled(commit, writes[:half]) + await _settled(commit, writes[half:])


async def _settled(commit: Commit, writes: Sequence[Write]) -> list[Any]:
    """The outcomes of a part of a batch, the other part of which may have committed already."""
    try:
        return await commit_apart(commit, writes)
    except Exception as exc:
        return [exc] * len(writes)


def _refused_data(exc: Exception) -> bool:
    """Whether a commit failed on what its rows hold: PEP 249 names these errors alike in every driver (sqlite3,
    duckdb, psycopg); ValueError and TypeError are the Python side's."""
    return isinstance(exc, (ValueError, TypeError)) or any(
        cls.__name__ in ("DataError", "IntegrityError") for cls in type(exc).__mro__)
