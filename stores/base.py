"""The session: a durable, append-only event log and the protocol every store implements."""
from __future__ import annotations

import json
import math
import re
import reprlib
import time
from abc import abstractmethod
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, ClassVar, Iterable, Protocol, Sequence, runtime_checkable

SCHEMA_VERSION = 2  # the log's schema: stores/events.py

# The event types a store itself knows (stores/events.py has every type, these among them): the first of every
# log; the one that opens a turn; the two that end it (TERMINAL_TYPES), which a later user message reopens.
SESSION_CREATED, USER_MESSAGE = "session.created", "user.message"
SESSION_COMPLETED, SESSION_FAILED = "session.completed", "session.failed"
TERMINAL_TYPES = frozenset({SESSION_COMPLETED, SESSION_FAILED})
_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")  # fullmatch: `$` would let "a.b\n" through
_VALID_TYPES: set[str] = set()  # types already checked against _TYPE_PATTERN
MAX_SESSION_ID_LENGTH = 200  # characters; a uuid4 hex is 32
MAX_DATA_DEPTH = 200  # levels of nesting in an event's data (a scalar is one); far deeper than any harness writes
_MAX_VERSION = 2**31 - 1  # v is a 32-bit integer column in PostgreSQL and DuckDB
_CONTAINERS = (dict, list, tuple)
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


class InvalidSessionId(StoreError, ValueError):
    """A session id that cannot be stored: not a str, empty, too long, or holding an unprintable character."""


class InvalidEvent(StoreError, ValueError):
    """An event that cannot be stored: a bad type name, ts or v, or data that JSON cannot give back as it is."""


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
        elif kind == USER_MESSAGE:
            current = "active"
    return current


def check_session_id(session_id: Any) -> None:
    """InvalidSessionId unless `session_id` is a non-empty str of at most MAX_SESSION_ID_LENGTH printable characters:
    checked by every write and read of a session before anything else (a NUL, say, would otherwise fail in PostgreSQL only)."""
    if isinstance(session_id, str) and 0 < len(session_id) <= MAX_SESSION_ID_LENGTH and session_id.isprintable():
        return
    if not isinstance(session_id, str):
        why = f"is of type {type(session_id).__name__}, not str"
    elif not session_id:
        why = "is empty"
    elif len(session_id) > MAX_SESSION_ID_LENGTH:
        why = f"is {len(session_id)} characters long"
    else:
        why = "holds a control or other unprintable character"
    raise InvalidSessionId(f"session id {_shown(session_id)} {why}: a session id is a str of 1 to "
                           f"{MAX_SESSION_ID_LENGTH} printable characters (no NUL, tab, newline or other control "
                           "character), like a uuid4 hex")


def encode_row(session_id: str, event: Event) -> tuple[str, str, float, int]:
    """Validate every field of an event for storage: (type, data as JSON, ts, v), as every store keeps it.

    Raises InvalidEvent naming the field, before anything is written or batched."""
    if not isinstance(event, Event):
        raise InvalidEvent(f"session {session_id}: expected an Event, got {type(event).__name__}")
    _check_type(session_id, event.type)
    return event.type, _encode_data(session_id, event), _checked_ts(session_id, event), _checked_v(session_id, event)


def _check_type(session_id: str, kind: Any) -> None:
    if isinstance(kind, str) and kind in _VALID_TYPES:
        return
    if not isinstance(kind, str) or not _TYPE_PATTERN.fullmatch(kind):
        raise InvalidEvent(f"session {session_id}: event type {_shown(kind)} is not a dotted lowercase name "
                           "like 'tool.result' (letters, digits and _, no spaces or newlines)")
    _VALID_TYPES.add(kind)


def _checked_ts(session_id: str, event: Event) -> float:
    ts = event.ts
    try:
        valid = isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts)
    except OverflowError:  # an int too large for a float
        valid = False
    if not valid:
        raise InvalidEvent(f"session {session_id}: {event.type} ts {_shown(ts)} is not a finite int or float: ts is "
                           "seconds since the epoch, like 1700000000.5 (time.time())")
    return float(ts)


def _checked_v(session_id: str, event: Event) -> int:
    v = event.v
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= _MAX_VERSION:
        raise InvalidEvent(f"session {session_id}: {event.type} v {_shown(v)} is not a schema version: "
                           f"an int from 0 to {_MAX_VERSION}, like {SCHEMA_VERSION}")
    return v


def _encode_data(session_id: str, event: Event) -> str:
    if not isinstance(event.data, dict):
        raise InvalidEvent(f"session {session_id}: {event.type} data must be a dict, got {type(event.data).__name__}")
    _check_data(session_id, event)
    try:
        text = _ENCODER.encode(event.data)
        text.encode("utf-8")  # a lone surrogate (e.g. from "\udc80" in a model's JSON) cannot be stored as text
    except UnicodeEncodeError as exc:
        raise InvalidEvent(f"session {session_id}: {event.type} data is not valid Unicode text: a lone surrogate "
                           f"{exc.object[exc.start:exc.end]!r} at character {exc.start} of its JSON") from None
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"session {session_id}: {event.type} data is not JSON-serialisable: {exc}") from None
    return text


def _check_data(session_id: str, event: Event) -> None:
    """InvalidEvent for data that JSON would not give back as it is (a key that is not a string, which the encoder
    turns into one; NaN or infinity) or that nests more than MAX_DATA_DEPTH levels: found level by level, without
    recursion, before the encoder recurses into it (a cycle is caught as too deep)."""
    level, depth = [event.data], 1  # the containers `depth` levels down
    while level:
        below = []
        for container in level:
            if container and depth == MAX_DATA_DEPTH:  # its items would be one level deeper
                raise InvalidEvent(f"session {session_id}: {event.type} data is nested more than {MAX_DATA_DEPTH} "
                                   "levels deep")
            if isinstance(container, dict):
                _check_keys(session_id, event, container)
                container = container.values()
            for item in container:
                if isinstance(item, _CONTAINERS):
                    below.append(item)
                elif isinstance(item, float) and not math.isfinite(item):
                    raise InvalidEvent(f"session {session_id}: {event.type} data holds {item}, which JSON cannot: "
                                       "use null or a string")
        level, depth = below, depth + 1


def _check_keys(session_id: str, event: Event, container: dict) -> None:
    for key in container:
        if not isinstance(key, str):
            raise InvalidEvent(f"session {session_id}: {event.type} data has the key {_shown(key)}, a "
                               f"{type(key).__name__}: keys must be strings (JSON would turn it into one)")


def _shown(value: Any) -> str:
    """A bad value as an error quotes it: abridged, however long or deep it is."""
    shown = reprlib.Repr()
    shown.maxstring = shown.maxother = 80
    return shown.repr(value)


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


class NotShared(StoreError, ValueError):
    """A store asked to be shared between processes that cannot be."""


@dataclass(frozen=True, slots=True)
class WorkerStore:
    """A store of one run's own that its worker processes share (SessionStore.for_workers)."""

    options: dict[str, Any]  # the config a worker (and the driver) opens it with
    server: Any = None  # the server of the run's own it runs on, which faults.store_restart stops and starts


@runtime_checkable
class SessionStore(Protocol):
    """The session log. Every method is a coroutine; every backend passes tests/stores/test_contract.py.

    A backend subclasses this and implements the five abstract methods; the rest has a default. What it
    declares (`shared_between_processes`, `for_workers`) the runners read, never probe for; the contract suite
    checks it declares them truthfully.
    """

    # several processes may read and write one store at once (one SQLite file, one PostgreSQL database)
    shared_between_processes: ClassVar[bool] = False

    @abstractmethod
    async def create_session(self, meta: dict[str, Any], session_id: str | None = None) -> str:
        """Create a session whose log starts with `session.created` carrying `meta`; its id is `session_id`
        (InvalidSessionId unless check_session_id accepts it), or a new uuid4 hex."""

    @abstractmethod
    async def append(self, session_id: str, events: Sequence[Event], *, expect: int | None = None) -> int:
        """Append atomically after position `expect` (None: wherever the log ends).

        Raises Conflict if the log is not exactly `expect` long. Returns the new length,
        only after the events are durable.
        """

    @abstractmethod
    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        """A positional slice of the log, with Python slice semantics."""

    @abstractmethod
    async def session(self, session_id: str) -> SessionInfo: ...

    @abstractmethod
    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        """Sessions, oldest first, optionally only those in `status`."""

    async def start(self) -> None:
        """Connect now rather than at the first call. Default: nothing to do."""

    async def close(self) -> None:
        """Let writes under way finish, then release what the store holds. Default: nothing to release."""

    def run_config(self, session_id: str) -> dict[str, Any] | None:
        """The config of the run that logged `session_id`, where the store keeps it (a results archive).
        Default: None, not kept."""
        return None

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], folder: Path) -> AsyncIterator[WorkerStore]:
        """A store of a run's own that its worker processes share, from the store's config `options` (its
        constructor options, `_target_` too if given, passed through): placed in the run's `folder`, or on a
        server of the run's own, which exists until the context exits.

        Raises NotShared, the default, for a store whose `shared_between_processes` is False."""
        raise NotShared(f"store {cls.__module__}.{cls.__qualname__} cannot be shared between processes, which worker "
                        "processes (run.workers, faults=) need: use store=sqlite or store=postgres")
        yield  # an async generator, for asynccontextmanager
