"""The session: a durable, append-only event log and the protocol every store implements."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

SCHEMA_VERSION = 1

# Event types that end a session's current turn; a later `user.message` reopens it.
TERMINAL_TYPES = frozenset({"session.completed", "session.failed"})
_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_VALID_TYPES: set[str] = set()  # types already checked against _TYPE_PATTERN
# One encoder for every event: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class StoreError(Exception):
    """Base of every error a session store raises."""


class Conflict(StoreError, RuntimeError):
    """The log was not `expected` events long: another writer appended first."""

    def __init__(self, session_id: str, expected: int, actual: int):
        super().__init__(
            f"session {session_id}: append expected the log to hold {expected} events, "
            f"it holds {actual} (another writer appended first)"
        )
        self.session_id, self.expected, self.actual = session_id, expected, actual


class StoreUnavailable(StoreError, ConnectionError):
    """The store cannot be reached; a write that raised this may or may not have happened.

    Not a reason to fail a session: the log is still the truth, and a later wake re-reads it."""


class SessionNotFound(StoreError, KeyError):
    def __init__(self, session_id: str):
        super().__init__(f"no session with id {session_id!r}")
        self.session_id = session_id

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class SessionExists(StoreError, ValueError):
    def __init__(self, session_id: str):
        super().__init__(f"session {session_id!r} already exists")
        self.session_id = session_id


class InvalidEvent(StoreError, ValueError):
    """An event that cannot be stored: bad type name or data that is not JSON."""


class CorruptEvent(StoreError, ValueError):
    """A stored event that cannot be read back."""

    def __init__(self, session_id: str, position: int, why: str):
        super().__init__(f"session {session_id}, position {position}: stored event is corrupt: {why}")
        self.session_id, self.position = session_id, position


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a session log. `position` is assigned by the store on append."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    position: int | None = None
    ts: float = field(default_factory=time.time)
    v: int = SCHEMA_VERSION

    def at(self, position: int) -> Event:
        return Event(self.type, self.data, position, self.ts, self.v)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    meta: dict[str, Any]
    length: int
    status: str  # "active" | "completed" | "failed"
    created: float  # ts of its session.created event
    updated: float  # ts of its last event

    @classmethod
    def from_row(cls, row: tuple) -> SessionInfo:
        """From an SQL row (id, meta as JSON text, length, status, created, updated)."""
        session_id, meta, length, status, created, updated = row
        return cls(session_id, json.loads(meta), length, status, created, updated)


def status_after(types: Iterable[str], current: str = "active") -> str:
    """The session status once events of these `types` are appended to a session in status `current`."""
    for kind in types:
        if kind in TERMINAL_TYPES:
            current = kind.removeprefix("session.")
        elif kind == "user.message":
            current = "active"
    return current


def encode_data(session_id: str, event: Event) -> str:
    """Validate an event for storage and return its data as JSON text."""
    if not isinstance(event, Event):
        raise InvalidEvent(f"session {session_id}: expected an Event, got {type(event).__name__}")
    if event.type not in _VALID_TYPES:
        if not isinstance(event.type, str) or not _TYPE_PATTERN.match(event.type):
            raise InvalidEvent(
                f"session {session_id}: event type {event.type!r} is not a dotted lowercase name "
                "like 'tool.result'"
            )
        _VALID_TYPES.add(event.type)
    if not isinstance(event.data, dict):
        raise InvalidEvent(f"session {session_id}: {event.type} data must be a dict, got {type(event.data).__name__}")
    try:
        text = _ENCODER.encode(event.data)
        text.encode("utf-8")  # a lone surrogate (e.g. from "\udc80" in a model's JSON) cannot be stored as text
    except UnicodeEncodeError as exc:
        raise InvalidEvent(f"session {session_id}: {event.type} data is not valid Unicode text: a lone surrogate "
                           f"{exc.object[exc.start:exc.end]!r} at character {exc.start} of its JSON") from None
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"session {session_id}: {event.type} data is not JSON-serialisable: {exc}") from None
    return text


def encode_row(session_id: str, event: Event) -> tuple[str, str, float, int]:
    """(type, data as JSON, ts, v): an event as every SQL backend stores it."""
    return event.type, encode_data(session_id, event), event.ts, event.v


def decode_event(session_id: str, position: int, type_: str, data: str, ts: float, v: int) -> Event:
    """Rebuild a stored event, naming the session and position if the row is damaged."""
    try:
        decoded = json.loads(data)
    except (TypeError, ValueError) as exc:
        raise CorruptEvent(session_id, position, f"data is not valid JSON ({exc})") from None
    if not isinstance(decoded, dict) or not isinstance(type_, str):
        raise CorruptEvent(session_id, position, "data is not a JSON object")
    return Event(type_, decoded, position, float(ts), int(v))


def slice_bounds(length: int, start: int, stop: int | None) -> tuple[int, int]:
    """Python slice semantics (negative indices count from the end) as a [lo, hi) range."""
    lo, hi, _ = slice(start, stop).indices(length)
    return lo, max(lo, hi)


def check_expect(session_id: str, expect: int | None, length: int) -> None:
    if expect is not None and expect != length:
        raise Conflict(session_id, expect, length)


@runtime_checkable
class SessionStore(Protocol):
    """The session log. Every method is a coroutine; every backend passes tests/stores/test_contract.py."""

    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        """Create a session whose log starts with `session.created` carrying `meta`."""

    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        """Append atomically after position `expect` (None: wherever the log ends).

        Raises Conflict if the log is not exactly `expect` long. Returns the new length,
        only after the events are durable.
        """

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        """A positional slice of the log, with Python slice semantics."""

    async def session(self, session_id: str) -> SessionInfo: ...

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        """Sessions, oldest first, optionally only those in `status`."""

    async def close(self) -> None: ...
