"""The session log's schema: every event type the project writes, one frozen dataclass each.

Each type has its name as `TYPE`, typed fields, a constructor to an `Event` (`ToolResult(...).event()`) and a
reader (`ToolResult.read(event)`); `typed(event)` reads any event, giving None for a type the project does not
write (a harness of your own may log types of its own: they pass through every reader untouched).

Readers take an event's data as it was logged, by its schema version (`Event.v`): a missing key reads as the
field's default (None for a field without one), and nothing is checked (`harnesses.messages.malformed` says what
a harness cannot read). `OPTIONAL` fields are left out of the data when None.

Names: `hand` is the kind of hands (a SandboxProvider's `hand`: "local", "docker", ...; on tool.call also
"harness" or "proxy", for tools that run there), `hand_name` the session's hand, its slot (one of the names a
harness is given as `harness.hands`, "main" by default), and `name` a tool's name.

Schema versions:
- v1 (until 2026-12-04): sandbox.* events name the hand `name`; sandbox.handed names the session it went to
  `to`, sandbox.received the one it came from `from`; harness.woke names the session's hands `hands`; tool.call
  writes `hand_name` only for tools that run in a sandbox.
- v2: sandbox.* write `hand_name`, sandbox.handed `to_session`, sandbox.received `from_session`, harness.woke
  `hand_names`; tool.call always writes `hand_name` (null for harness and proxy tools).
"""
from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, Iterable, Self

from stores.base import SCHEMA_VERSION, SESSION_COMPLETED, SESSION_CREATED, SESSION_FAILED, USER_MESSAGE, Event

HARNESS_HAND = "harness"  # tool.call's hand for a tool the harness answers from the log (a context's own)
PROXY_HAND = "proxy"  # tool.call's hand for a tool the credential proxy runs


class Logged:
    """What every event type has: its name, its constructor to an Event and its reader."""

    __slots__ = ()
    TYPE: ClassVar[str]
    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # fields left out of the data when None
    V1_KEYS: ClassVar[dict[str, str]] = {}  # field -> the key it had in schema version 1

    def event(self) -> Event:
        values = ((name, getattr(self, name)) for name in _keys(type(self), SCHEMA_VERSION))
        return Event(self.TYPE, {name: value for name, value in values if value is not None or name not in self.OPTIONAL})

    @classmethod
    def read(cls, event: Event) -> Self:
        data = event.data
        return cls(*[data[key] if key in data else (default() if factory else default)
                     for key, default, factory in _keys(cls, event.v).values()])

    @classmethod
    def value(cls, event: Event, name: str) -> Any:
        """The field `name` of `event`, as `read` reads it, without building the rest: for the loops that run over
        a whole log at every step."""
        keys = _keys(cls, event.v)
        if name not in keys:
            raise AttributeError(f"{cls.TYPE} has no field {name!r}; its fields: {', '.join(keys)}")
        key, default, factory = keys[name]
        data = event.data
        return data[key] if key in data else (default() if factory else default)

    @classmethod
    def all_in(cls, events: Iterable[Event]) -> list[Self]:
        """Every event of this type among `events`, read."""
        return [cls.read(e) for e in events if e.type == cls.TYPE]


_KEYS: dict[tuple[type, bool], dict[str, tuple[str, Any, bool]]] = {}  # (class, v2 or later) -> field -> how to read it


def _keys(cls: type[Logged], version: int) -> dict[str, tuple[str, Any, bool]]:
    """For each field of `cls`: (its key in the data of schema `version`, its default, whether that is a factory)."""
    v2 = version >= 2
    if (cls, v2) not in _KEYS:
        _KEYS[cls, v2] = {f.name: (f.name if v2 else cls.V1_KEYS.get(f.name, f.name), *_default(f)) for f in fields(cls)}
    return _KEYS[cls, v2]


def _default(f: Field) -> tuple[Any, bool]:
    """What a missing key reads as (None for a field without a default), and whether that is a factory to call."""
    if f.default_factory is not MISSING:
        return f.default_factory, True
    return (None if f.default is MISSING else f.default), False


@dataclass(frozen=True, slots=True)
class SessionCreated(Logged):
    """The session's meta (the task's system prompt, tools, workspace setup, ...): whatever its creator gave."""

    TYPE: ClassVar[str] = SESSION_CREATED
    meta: dict[str, Any] = field(default_factory=dict)

    def event(self) -> Event:
        return Event(self.TYPE, dict(self.meta))

    @classmethod
    def read(cls, event: Event) -> SessionCreated:
        return cls(event.data)

    @classmethod
    def value(cls, event: Event, name: str) -> Any:
        return getattr(cls.read(event), name)


@dataclass(frozen=True, slots=True)
class UserMessage(Logged):
    TYPE: ClassVar[str] = USER_MESSAGE
    text: str = ""


@dataclass(frozen=True, slots=True)
class HarnessWoke(Logged):
    """A harness took the session over; `worker` is the worker slot that drives it (None outside workers)."""

    TYPE: ClassVar[str] = "harness.woke"
    OPTIONAL = ("hand_names",)
    V1_KEYS = {"hand_names": "hands"}
    harness: str | None = None
    pid: int | None = None
    host: str | None = None
    worker: str | None = None
    hand_names: list[str] | None = None  # the session's hands, the first the default; None: only "main"


@dataclass(frozen=True, slots=True)
class ModelResponse(Logged):
    """A model call returned: its content blocks, usage, timings (ms; `requested_at` is time.time()) and retries;
    `context` says how its context was built; the first call of a turn adds `turn_ttft_ms` and its breakdown."""

    TYPE: ClassVar[str] = "model.response"
    OPTIONAL = ("turn_ttft_ms", "turn_breakdown", "context_management")
    content: list[Any]
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    request_id: str | None = None
    requested_at: float | None = None
    ttft_ms: float | None = None
    server_ttft_ms: float | None = None
    latency_ms: float | None = None
    context_ms: float | None = None
    retries: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # strategy, messages, stable_messages
    turn_ttft_ms: float | None = None
    turn_breakdown: dict[str, float] | None = None  # queue_ms, provision_ms, context_ms, model_ttft_ms, other_ms
    context_management: dict[str, Any] | None = None  # the API's server-side edits applied to this call's context


@dataclass(frozen=True, slots=True)
class ToolCall(Logged):
    """Logged before the tool runs; `hand` and `hand_name` as the module docstring says."""

    TYPE: ClassVar[str] = "tool.call"
    tool_use_id: str
    name: str | None = None
    input: Any = None
    hand: str | None = None
    idempotency_key: str | None = None
    hand_name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult(Logged):
    """A tool's output; `new_sandbox`: the first result from hands that replaced lost ones (harnesses/hands.py)."""

    TYPE: ClassVar[str] = "tool.result"
    OPTIONAL = ("new_sandbox",)
    tool_use_id: str
    name: str | None = None
    output: str = ""
    is_error: bool = False
    duration_ms: float | None = None
    new_sandbox: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxProvisioned(Logged):
    """New hands: `replaces` the lost sandbox's id, `restored` (a fork's) where from and how many calls ran again."""

    TYPE: ClassVar[str] = "sandbox.provisioned"
    OPTIONAL = ("replaces", "restored")
    V1_KEYS = {"hand_name": "name"}
    sandbox_id: str
    hand_name: str | None = None
    hand: str | None = None
    provision_ms: float | None = None
    setup_ms: float | None = None
    replaces: str | None = None
    restored: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SandboxLost(Logged):
    TYPE: ClassVar[str] = "sandbox.lost"
    V1_KEYS = {"hand_name": "name"}
    sandbox_id: str
    hand_name: str | None = None
    hand: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxHanded(Logged):
    """The session no longer holds this sandbox as `hand_name`: session `to_session` does (harnesses.hands.hand_over)."""

    TYPE: ClassVar[str] = "sandbox.handed"
    V1_KEYS = {"hand_name": "name", "to_session": "to"}
    sandbox_id: str
    hand_name: str | None = None
    to_session: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxReceived(Logged):
    """The session holds session `from_session`'s sandbox as `hand_name` from now on."""

    TYPE: ClassVar[str] = "sandbox.received"
    V1_KEYS = {"hand_name": "name", "from_session": "from"}
    sandbox_id: str
    hand_name: str | None = None
    from_session: str | None = None


@dataclass(frozen=True, slots=True)
class ContextCompacted(Logged):
    """The compaction strategy's summary of positions [0, `to`), and the model call that wrote it."""

    TYPE: ClassVar[str] = "context.compacted"
    summary: str
    to: int
    tokens_before: int | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    request_id: str | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    compact_ms: float | None = None


@dataclass(frozen=True, slots=True)
class TaskChecked(Logged):
    """The task's check, run in the session's sandbox by a worker or `collect` (`worker`: its slot)."""

    TYPE: ClassVar[str] = "task.checked"
    success: bool = False
    detail: str = ""
    worker: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCompleted(Logged):
    TYPE: ClassVar[str] = SESSION_COMPLETED
    STATUS: ClassVar[str] = "completed"  # the session's status once it ends so
    OPTIONAL = ("final_text",)
    reason: str = ""
    final_text: str | None = None  # the model's last text


@dataclass(frozen=True, slots=True)
class SessionFailed(Logged):
    TYPE: ClassVar[str] = SESSION_FAILED
    STATUS: ClassVar[str] = "failed"
    OPTIONAL = ("final_text",)
    reason: str = ""
    final_text: str | None = None


# -- the Managed Agents API's records (managed/): agents, sessions and environments are logs of the store ---------

@dataclass(frozen=True, slots=True)
class AgentVersion(Logged):
    """An agent's next version: its whole definition (managed/agents.py), logged as the event's data itself."""

    TYPE: ClassVar[str] = "managed.agent_version"
    definition: dict[str, Any] = field(default_factory=dict)

    def event(self) -> Event:
        return Event(self.TYPE, dict(self.definition))

    @classmethod
    def read(cls, event: Event) -> AgentVersion:
        return cls(event.data)

    @classmethod
    def value(cls, event: Event, name: str) -> Any:
        return getattr(cls.read(event), name)


@dataclass(frozen=True, slots=True)
class SessionUpdated(Logged):
    """A served session's `metadata` patch (a key set to None is deleted) and, when `retitled`, its new `title`
    (None: no title); `title` is in the data only when it changed."""

    TYPE: ClassVar[str] = "managed.session_updated"
    metadata: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    retitled: bool = False

    def event(self) -> Event:
        return Event(self.TYPE, {"metadata": dict(self.metadata), **({"title": self.title} if self.retitled else {})})

    @classmethod
    def read(cls, event: Event) -> SessionUpdated:
        return cls(event.data.get("metadata") or {}, event.data.get("title"), "title" in event.data)

    @classmethod
    def value(cls, event: Event, name: str) -> Any:
        return getattr(cls.read(event), name)


@dataclass(frozen=True, slots=True)
class SessionDeleted(Logged):
    """A served session was deleted: its log is kept, and the API shows it no more."""

    TYPE: ClassVar[str] = "managed.session_deleted"


@dataclass(frozen=True, slots=True)
class WorkerResult(Logged):
    """The result a self-hosted environment's worker posted (`user.tool_result`) for the model's `tool_use_id`;
    the harness then logs it as the call's tool.result."""

    TYPE: ClassVar[str] = "managed.worker_result"
    tool_use_id: str
    output: str = ""
    is_error: bool = False


# A self-hosted environment's work queue is its log (managed/work.py): one event per change of a work item.

@dataclass(frozen=True, slots=True)
class WorkQueued(Logged):
    """Session `session_id` needs the environment's hands: a work item for its worker."""

    TYPE: ClassVar[str] = "managed.work_queued"
    work_id: str
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class WorkPolled(Logged):
    """A poll handed the item to worker `worker_id`; `reclaimed` says why it was handed out again, if it was."""

    TYPE: ClassVar[str] = "managed.work_polled"
    OPTIONAL = ("reclaimed",)
    work_id: str
    worker_id: str | None = None
    reclaimed: str | None = None


@dataclass(frozen=True, slots=True)
class WorkAcked(Logged):
    """The worker acknowledged the item: its lease runs from now, `ttl_seconds` until a heartbeat extends it."""

    TYPE: ClassVar[str] = "managed.work_acked"
    work_id: str
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class WorkHeartbeat(Logged):
    """A heartbeat extended the lease by `ttl_seconds`; `last_heartbeat` is what the next one must echo."""

    TYPE: ClassVar[str] = "managed.work_heartbeat"
    work_id: str
    last_heartbeat: str | None = None
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class WorkStopped(Logged):
    """A stop of the item: `force` (or an item no worker acknowledged) stops it; else it is stopping until its
    worker stops it or its lease runs out."""

    TYPE: ClassVar[str] = "managed.work_stopped"
    work_id: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class WorkUpdated(Logged):
    """A patch of the item's `metadata` (a key set to None is deleted)."""

    TYPE: ClassVar[str] = "managed.work_updated"
    work_id: str
    metadata: dict[str, Any] = field(default_factory=dict)


TYPES: dict[str, type[Logged]] = {cls.TYPE: cls for cls in (
    SessionCreated, UserMessage, HarnessWoke, ModelResponse, ToolCall, ToolResult, SandboxProvisioned, SandboxLost,
    SandboxHanded, SandboxReceived, ContextCompacted, TaskChecked, SessionCompleted, SessionFailed,
    AgentVersion, SessionUpdated, SessionDeleted, WorkerResult,
    WorkQueued, WorkPolled, WorkAcked, WorkHeartbeat, WorkStopped, WorkUpdated,
)}
ENDINGS: dict[str, type[SessionCompleted | SessionFailed]] = {cls.STATUS: cls for cls in (SessionCompleted, SessionFailed)}


def typed(event: Event) -> Logged | None:
    """The event as its type's dataclass, or None for a type the project does not write."""
    cls = TYPES.get(event.type)
    return cls.read(event) if cls is not None else None


def session_ended(status: str, reason: str, final_text: str | None = None) -> Event:
    """session.completed or session.failed, by `status`."""
    if status not in ENDINGS:
        raise ValueError(f"a session ends with status {status!r}; valid: {', '.join(ENDINGS)}")
    return ENDINGS[status](reason, final_text).event()
