"""Fork and replay: a new session that starts from events [0, N) of a logged one.

The new session copies the prefix into the run's store (same types, data, schema versions and positions;
fresh timestamps), with `forked_from` in its meta. Its hands are its own: if the prefix holds a live sandbox,
a fresh one is provisioned and every tool call the prefix ran in that sandbox runs again, in order, so
the fork starts from the workspace the prefix left (for a sandbox the session received from another, the
giver's calls in it run first, from the giver's setup). Then a harness wakes on it. With `model=replay` the
rest of the recording drives it (a replay: tools run again for real, and each result is compared with
the logged one); with any other model the session takes a path of its own (a fork).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from experiments.sessions.transcript import gaps, printable
from harnesses.hands import HOLDS, Hands, first_hand, hand_of, live_sandbox_id
from harnesses.log import SessionLog
from sandboxes.base import Fetch, SandboxProvider, Setup
from stores.base import TERMINAL_TYPES, Event, SessionInfo, SessionNotFound, SessionStore
from stores.events import (
    HARNESS_HAND, PROXY_HAND, SandboxHanded, SandboxProvisioned, SandboxReceived, SessionCreated, ToolCall, ToolResult,
    UserMessage, typed,
)

BRIEF = 300  # characters of an expected or got output shown in a divergence
NOT_IN_SANDBOX = (HARNESS_HAND, PROXY_HAND)  # tool.call hands that never touched the workspace: nothing to restore


class ForkError(ValueError):
    """A fork point or session that cannot be used; the message says what can."""


@dataclass(frozen=True, slots=True)
class Origin:
    """The logged session a fork or replay starts from."""

    info: SessionInfo
    events: list[Event]
    givers: dict[str, list[Event]] = field(default_factory=dict)  # logs of the sessions that handed it a sandbox, and theirs

    @property
    def task_start(self) -> int:
        """Just after the first user message: where a replay starts."""
        first = next((e.position for e in self.events if e.type == UserMessage.TYPE), None)
        if first is None:
            raise ForkError(f"session {self.info.id} has no user message: there is nothing to replay")
        return first + 1

    def user_messages(self, after: int) -> list[Event]:
        return [e for e in self.events if e.type == UserMessage.TYPE and e.position >= after]


@dataclass(frozen=True, slots=True)
class ToolDivergence:
    """A tool call that gave another result than the log says it gave."""

    position: int  # of the logged tool.result
    tool: str
    input: Any
    expected: str
    got: str

    def __str__(self) -> str:
        call = f"{self.tool} {json.dumps(self.input, ensure_ascii=False)[:120]}"
        return printable(f"position {self.position} ({call}): expected {self.expected[:BRIEF]!r}, got {self.got[:BRIEF]!r}")

    def row(self) -> dict[str, Any]:
        return {"position": self.position, "tool": self.tool, "input": json.dumps(self.input), "expected": self.expected, "got": self.got}


async def find_session(store: SessionStore, prefix: str) -> SessionInfo:
    """The one session whose id starts with `prefix`."""
    matches = [info for info in await store.sessions() if info.id.startswith(prefix)]
    if len(matches) != 1:
        found = "no session" if not matches else f"{len(matches)} sessions ({', '.join(m.id for m in matches[:5])})"
        raise ForkError(f"{found} matching {prefix!r}; `harnesslab sessions ls` lists them")
    return matches[0]


async def load_origin(store: SessionStore, prefix: str) -> Origin:
    info = await find_session(store, prefix)
    events = await store.events(info.id)
    if missing := gaps(events, info.length):
        first, last = missing[0]
        raise ForkError(f"session {info.id}: its log has a gap (no event at positions {first}..{last} of {info.length}): "
                        "a fork or replay needs the whole log")
    return Origin(info, events, await _givers(store, events))


async def _givers(store: SessionStore, events: list[Event]) -> dict[str, list[Event]]:
    """The logs of every session that handed this one a sandbox, and of those that handed them theirs (those the
    store holds: a sandbox from elsewhere is restored from what this log says alone)."""
    found: dict[str, list[Event]] = {}
    pending = [events]
    while pending:
        for event in pending.pop():
            giver = SandboxReceived.read(event).from_session if event.type == SandboxReceived.TYPE else None
            if isinstance(giver, str) and giver not in found:
                try:
                    found[giver] = await store.events(giver)
                except SessionNotFound:
                    continue
                pending.append(found[giver])
    return found


def check_fork_point(origin: Origin, at: int, message: str | None = None) -> None:
    length = len(origin.events)
    if not 2 <= at <= length:
        raise ForkError(f"--at {at}: session {origin.info.id} holds positions 0..{length - 1}; "
                        f"fork at 2..{length} (events [0, N) are kept; {origin.task_start} is just after the task)")
    answered = {ToolResult.read(e).tool_use_id: e.position for e in origin.events if e.type == ToolResult.TYPE}
    cut = [e for e in origin.events[:at] if e.type == ToolCall.TYPE and answered.get(ToolCall.read(e).tool_use_id, 0) >= at]
    if cut:
        call, result = cut[0].position, answered[ToolCall.read(cut[0]).tool_use_id]
        raise ForkError(f"--at {at} falls inside a tool call (logged at {call}, its result at {result}); "
                        f"fork at {call} (before the call) or at {result + 1} (after its result)")
    last = origin.events[at - 1]
    if last.type in TERMINAL_TYPES and message is None:
        raise ForkError(f"--at {at}: the session has ended there ({last.type} at position {last.position}); "
                        f"fork earlier, or give --message to continue it with a new user message")


async def start_fork(
    store: SessionStore, sandboxes: SandboxProvider, origin: Origin, at: int, message: str | None = None,
    credentials: Any = None,
) -> tuple[str, int, list[ToolDivergence]]:
    """Create the fork from events [0, at) (granted its credentials by `credentials`, a CredentialLab, if the task
    asks for some); return its id, how many of the prefix's tool calls ran again to restore its sandbox, and where
    their results differed from the log."""
    check_fork_point(origin, at, message)
    meta = {**origin.info.meta, "forked_from": {"session_id": origin.info.id, "at": at}}
    log = await SessionLog.open(store, await store.create_session(meta))
    fetch = None
    if credentials is not None:
        await credentials.grant(log.session_id, meta)
        fetch = credentials.credentials.fetcher(log.session_id)
    await log.append(*(Event(e.type, e.data, v=e.v) for e in origin.events[1:at]))  # read as they were written
    restored, divergences = await restore_hands(log, sandboxes, origin, fetch)
    if message is not None:
        await log.append(UserMessage(message).event())
    return log.session_id, restored, divergences


async def restore_hands(
    log: SessionLog, sandboxes: SandboxProvider, origin: Origin, fetch: Fetch | None = None
) -> tuple[int, list[ToolDivergence]]:
    """Give the fork sandboxes of its own in the state the prefix left, for every hand it holds a live one as."""
    prefix = log.events
    live = list(dict.fromkeys(hand_of(e) for e in prefix if e.type in HOLDS))
    live = [name for name in live if live_sandbox_id(prefix, name) is not None]  # lost ones: provisioned when needed
    hands = Hands(sandboxes, log, fetch=fetch, names=list(dict.fromkeys([first_hand(prefix), *live])))
    restored, divergences = 0, []
    for name in live:
        setup, ran = hand_history(origin, origin.info.id, prefix, name)
        await hands.fresh(name, Setup.from_meta(setup), restored={"from": origin.info.id, "calls": len(ran)})
        for result, call in ran:
            input = {k: v for k, v in call.input.items() if k != "hand"} if call.hand_name is not None else call.input
            again = await hands.execute(call.name, input, f"{log.session_id}:{ToolResult.read(result).tool_use_id}", name)
            divergences += _differs(result, call, again.output, again.is_error)
        restored += len(ran)
    return restored, divergences


def hand_history(origin: Origin, session_id: str, events: list[Event], hand: str) -> tuple[dict | None, list[tuple[Event, ToolCall]]]:
    """(the setup the sandbox `events` end up holding as `hand` was prepared with, and every (tool.result, tool.call)
    that ran in it since, oldest first), back through each session that handed it on, as far as the origin's givers
    go; `session_id`: whose log `events` is."""
    since = [e for e in events if e.type in HOLDS and hand_of(e) == hand][-1]
    ran = _calls_on(events, since.position, hand)
    held = typed(since)
    giver_id = held.from_session if isinstance(held, SandboxReceived) else None
    giver, sandbox_id = origin.givers.get(giver_id, []), held.sandbox_id
    # the k-th time this session received the sandbox from the giver is the k-th time the giver handed it here
    k = sum(1 for r in SandboxReceived.all_in(events[: since.position]) if (r.from_session, r.sandbox_id) == (giver_id, sandbox_id))
    handings = [(e, SandboxHanded.read(e)) for e in giver if e.type == SandboxHanded.TYPE]
    handed = [e for e, h in handings if (h.sandbox_id, h.to_session) == (sandbox_id, session_id)]
    if len(handed) <= k:  # provisioned here, or received from a session the source does not hold
        return SessionCreated.read(events[0]).meta.get("setup"), ran
    setup, earlier = hand_history(origin, giver_id, giver[: handed[k].position], hand_of(handed[k]))
    return setup, earlier + ran


def _calls_on(events: list[Event], since: int, hand: str) -> list[tuple[Event, ToolCall]]:
    """(tool.result, its tool.call) for every call whose result these events logged from `since` on, run in the
    sandbox held as `hand` (a call is logged before its sandbox is provisioned: look for it in all of them)."""
    first = first_hand(events)
    calls = {c.tool_use_id: c for c in ToolCall.all_in(events) if c.hand not in NOT_IN_SANDBOX}
    results = [(e, ToolResult.read(e).tool_use_id) for e in events[since:] if e.type == ToolResult.TYPE]
    return [(e, calls[use_id]) for e, use_id in results if use_id in calls and (calls[use_id].hand_name or first) == hand]


def replay_divergences(origin: Origin, at: int, replayed: list[Event], outcome: str) -> list[ToolDivergence]:
    """Every logged tool result from `at` on, against the replay's result for the same tool_use id."""
    calls = {c.tool_use_id: c for c in ToolCall.all_in(origin.events)}
    got = {r.tool_use_id: r for r in ToolResult.all_in(replayed)}
    found = []
    for event in (e for e in origin.events[at:] if e.type == ToolResult.TYPE):
        result = ToolResult.read(event)
        call = calls.get(result.tool_use_id, ToolCall(result.tool_use_id, result.name))
        mine = got.get(result.tool_use_id)
        if mine is None:
            found.append(ToolDivergence(event.position, call.name, call.input, _shown(result.output, result.is_error),
                                        f"nothing: the replay ended first ({outcome})"))
        else:
            found += _differs(event, call, mine.output, mine.is_error)
    return found


def _differs(logged: Event, call: ToolCall, output: str, is_error: bool) -> list[ToolDivergence]:
    result = ToolResult.read(logged)
    if (result.output, bool(result.is_error)) == (output, bool(is_error)):
        return []
    return [ToolDivergence(logged.position, call.name, call.input, _shown(result.output, result.is_error), _shown(output, is_error))]


def _shown(output: str, is_error: bool) -> str:
    return f"{'error: ' if is_error else ''}{output}"


def stream_digest(session_id: str, events: list[Event]) -> str:
    """sha256 of a session's event stream with what differs between identical runs normalized: timestamps
    and timings (`ts`, every `*_ms` and `*_at` field), identities (the session's and its sandboxes' ids) and the process
    (`pid`, `host`). Two replays of one session under one config have the same digest."""
    text = json.dumps([[e.position, e.type, _untimed(e.data)] for e in events], sort_keys=True, ensure_ascii=False)
    sandboxes = dict.fromkeys(SandboxProvisioned.read(e).sandbox_id for e in events if e.type == SandboxProvisioned.TYPE)
    for i, identity in enumerate([session_id, *sandboxes]):
        if identity:
            text = text.replace(identity, f"<id-{i}>")
    return hashlib.sha256(text.encode()).hexdigest()


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items()
                if not k.endswith(("_ms", "_at")) and k not in ("pid", "host", "turn_breakdown")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value
