"""A session's hands: provisioned at the first tool call that needs them, replaced when lost."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Sequence

from harnesses.log import SessionLog
from sandboxes.base import Fetch, Sandbox, SandboxError, SandboxLost, SandboxProvider, Setup, ToolResult
from stores import events as logged
from stores.base import Event, SessionStore


DEFAULT_HAND = "main"  # the hand of a session that names none; logs without a hand name mean it
NEW_SANDBOX = "[new sandbox]"  # how the first result from replacement hands begins (harnesses/models/offline_brain.py reads it)
_HAND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def hand_names(hands: Sequence[str] | None) -> tuple[str, ...]:
    """The hands a harness gives each session: `main` alone, or several distinct names (the first is the default)."""
    if hands is None:
        return (DEFAULT_HAND,)
    names = tuple(hands) if not isinstance(hands, str) else (hands,)
    bad = [n for n in names if not isinstance(n, str) or not _HAND_NAME.match(n)]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"harness.hands={list(names)}: give one or more distinct names of lowercase letters, digits, "
                         f"_ or - (starting with a letter), e.g. [main] or [a, b]" + (f"; not valid: {bad}" if bad else ""))
    return names


HOLDS = (logged.SandboxProvisioned.TYPE, logged.SandboxReceived.TYPE)  # a hand holds a sandbox from one of these on
ENDS = (logged.SandboxLost.TYPE, logged.SandboxHanded.TYPE)  # ... until one of these


def hand_of(event: Event) -> str:
    """The hand a sandbox.* event is about (logs that name none mean the default)."""
    return logged.typed(event).hand_name or DEFAULT_HAND


def first_hand(events: list[Event]) -> str:
    """The hand a session names first (where its task is checked): the first its harness was given, else main."""
    named = [woke.hand_names for woke in logged.HarnessWoke.all_in(events) if woke.hand_names]
    return named[-1][0] if named else DEFAULT_HAND


@dataclass(frozen=True, slots=True)
class Held:
    """What the log says of the sandbox a session holds as one hand."""

    sandbox_id: str | None  # provisioned or received, and not lost or handed on since
    ended: Event | None  # what ended the one before (sandbox.lost or sandbox.handed), until a tool result told the model


def held(events: list[Event], hand: str = DEFAULT_HAND) -> Held:
    """The sandbox the log says this session holds as `hand`, and whether the model is still to be told that it
    replaces one (told: a tool.result whose `new_sandbox` is that sandbox)."""
    current = ended = None
    for event in events:
        if event.type == logged.ToolResult.TYPE:
            if ended is not None and current and logged.ToolResult.read(event).new_sandbox == current:
                ended = None  # the first result from the replacement said so
            continue
        if event.type not in HOLDS + ENDS or hand_of(event) != hand:
            continue
        change = logged.typed(event)
        if event.type in HOLDS:
            current = change.sandbox_id
            replaces = isinstance(change, logged.SandboxProvisioned) and change.replaces is not None
            ended = ended if replaces else None  # received, or restored (a fork): not a fresh start
        elif change.sandbox_id == current:
            current, ended = None, event
    return Held(current, ended)


def live_sandbox_id(events: list[Event], hand: str = DEFAULT_HAND) -> str | None:
    """The sandbox the log says this session holds as `hand`: provisioned or received, and not lost or handed
    on since."""
    return held(events, hand).sandbox_id


def new_sandbox_notice(ended: Event, names: Sequence[str]) -> str:
    """What the model is told, ahead of the output, in the first result from a sandbox that replaces one the session
    held: whatever ended the old one (lost at the start of a call or during one, handed on), this is the one wording."""
    whose = f"as hand {hand_of(ended)!r} " if len(names) > 1 else ""
    return (f"{NEW_SANDBOX} The sandbox this session held {whose}{_gone(ended)}, so this call ran in a fresh sandbox "
            "that holds only the task's setup: every change earlier tool calls made to files is gone.\n")


def _gone(ended: Event) -> str:
    end = logged.typed(ended)
    if isinstance(end, logged.SandboxHanded):
        return f"was handed to session {end.to_session}"
    return f"was lost ({' '.join(str(end.reason).split())})"  # on the notice's one line


async def hand_over(store: SessionStore, giver: str, taker: str, hand: str = DEFAULT_HAND, as_hand: str = DEFAULT_HAND) -> str:
    """Pass the sandbox session `giver` holds as `hand` to session `taker` (a sub-agent, or a second brain), which
    holds it as `as_hand`, logging it on both: `sandbox.handed` on the giver, which no longer holds it, and
    `sandbox.received` on the taker, whose next tool call on that hand attaches to it by id. Returns the sandbox id."""
    given = await SessionLog.open(store, giver)
    sandbox_id = live_sandbox_id(given.events, hand)
    if sandbox_id is None:
        raise SandboxError(f"session {giver} holds no sandbox as hand {hand!r} to hand over (none provisioned yet, or lost)")
    taken = await SessionLog.open(store, taker)
    await given.append(logged.SandboxHanded(sandbox_id, hand, to_session=taker).event())
    await taken.append(logged.SandboxReceived(sandbox_id, as_hand, from_session=giver).event())
    return sandbox_id


class PetLost(SandboxError, ConnectionError):
    """The sandbox of a harness that cannot replace its hands is gone, and the session with it."""


@dataclass(frozen=True, slots=True)
class FirstResult(ToolResult):
    """The first result from a sandbox that replaced one the session held; its output begins with the notice."""

    new_sandbox: str = ""


class Hands:
    """A session's sandboxes by hand name (one, `main`, unless the harness names several), each provisioned at its
    first tool call. `replace_lost=False` is the coupled design: the session lives and dies with its one sandbox."""

    def __init__(self, provider: SandboxProvider, log: SessionLog, replace_lost: bool = True, fetch: Fetch | None = None,
                 names: Sequence[str] = (DEFAULT_HAND,)):
        self.provider, self.log, self.replace_lost = provider, log, replace_lost
        self.fetch = fetch  # clones the setup's repositories (through the credential proxy)
        self.names = tuple(names)  # the first is where a call that names no hand runs, and where the task is checked
        self._sandboxes: dict[str, Sandbox] = {}
        self.provision_ms = 0.0  # spent provisioning and preparing, in this wake

    @property
    def sandbox_id(self) -> str | None:
        """The first hand's sandbox."""
        first = self._sandboxes.get(self.names[0])
        return first.id if first else live_sandbox_id(self.log.events, self.names[0])

    async def execute(self, name: str, input: dict, key: str | None = None, hand: str | None = None) -> ToolResult:
        hand = hand or self.names[0]
        sandbox, ended = await self._ready(hand)
        try:
            result = await sandbox.execute(name, input, key)
        except SandboxLost as exc:
            await self._lost(hand, sandbox.id, exc)
            if not self.replace_lost:
                raise PetLost(f"the sandbox holding this session was lost ({exc})") from None
            return ToolResult(f"the sandbox running this tool was lost while it ran ({exc}): the call's outcome is "
                              "unknown, and the next tool call runs in a fresh sandbox", is_error=True)
        if ended is None:
            return result
        return FirstResult(new_sandbox_notice(ended, self.names) + result.output, result.is_error, result.duration_ms,
                           new_sandbox=sandbox.id)

    async def get(self, hand: str | None = None) -> Sandbox:
        return (await self._ready(hand or self.names[0]))[0]

    async def _ready(self, hand: str) -> tuple[Sandbox, Event | None]:
        """The hand's sandbox, and what ended the one it replaces if the model has not been told yet: the sandbox
        the log names if it is still there, else a new one (which the coupled design never gets)."""
        if hand in self._sandboxes:
            return self._sandboxes[hand], None
        state = held(self.log.events, hand)
        if state.sandbox_id is not None:
            try:
                self._sandboxes[hand] = await self.provider.attach(state.sandbox_id)
                return self._sandboxes[hand], state.ended
            except SandboxLost as exc:
                await self._lost(hand, state.sandbox_id, exc)
                state = held(self.log.events, hand)
        if state.ended is not None and not self.replace_lost:
            raise PetLost(f"the sandbox holding this session {_gone(state.ended)}")
        replaces = {"replaces": logged.typed(state.ended).sandbox_id} if state.ended is not None else None
        self._sandboxes[hand] = await self._provision(hand, replaces)
        return self._sandboxes[hand], state.ended

    async def fresh(self, hand: str | None = None, setup: Setup | None = None, **note) -> Sandbox:
        """A new sandbox as `hand` (the first by default), whatever the log says (a fork gets hands of its own),
        prepared with `setup` (default: the session's); `note` is logged."""
        hand = hand or self.names[0]
        self._sandboxes[hand] = await self._provision(hand, note, setup)
        return self._sandboxes[hand]

    async def _provision(self, hand: str, note: dict | None = None, setup: Setup | None = None) -> Sandbox:
        started = time.perf_counter()
        sandbox = await self.provider.provision()
        provisioned = time.perf_counter()
        await sandbox.prepare(setup or Setup.from_meta(self.log.meta.get("setup")), self.fetch)
        self.provision_ms += (time.perf_counter() - started) * 1000
        await self.log.append(logged.SandboxProvisioned(
            sandbox.id, hand, self.provider.hand, provision_ms=(provisioned - started) * 1000,
            setup_ms=(time.perf_counter() - provisioned) * 1000, **(note or {}),
        ).event())
        return sandbox

    async def _lost(self, hand: str, sandbox_id: str, exc: Exception) -> None:
        self._sandboxes.pop(hand, None)
        await self.log.append(logged.SandboxLost(sandbox_id, hand, self.provider.hand, str(exc)).event())
