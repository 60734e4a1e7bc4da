"""A session's hands: provisioned at the first tool call that needs them, replaced when lost."""
from __future__ import annotations

import time
from typing import Sequence

from harnesses.log import SessionLog
from sandboxes.base import Fetch, Sandbox, SandboxError, SandboxLost, SandboxProvider, Setup, ToolResult
from stores.base import Event, SessionStore


DEFAULT_HAND = "main"  # the hand of a session that names none; logs without a hand name mean it


def hand_of(event: Event) -> str:
    return event.data.get("name", DEFAULT_HAND)


def first_hand(events: list[Event]) -> str:
    """The hand a session names first (where its task is checked): the first its harness was given, else main."""
    woke = [e for e in events if e.type == "harness.woke" and e.data.get("hands")]
    return woke[-1].data["hands"][0] if woke else DEFAULT_HAND


def live_sandbox_id(events: list[Event], hand: str = DEFAULT_HAND) -> str | None:
    """The sandbox the log says this session holds as `hand`: provisioned or received, and not lost or handed
    on since."""
    current = None
    for event in events:
        if not event.type.startswith("sandbox.") or hand_of(event) != hand:
            continue
        if event.type in ("sandbox.provisioned", "sandbox.received"):
            current = event.data.get("sandbox_id")
        elif event.type in ("sandbox.lost", "sandbox.handed") and event.data.get("sandbox_id") == current:
            current = None
    return current


async def hand_over(store: SessionStore, giver: str, taker: str, hand: str = DEFAULT_HAND, as_hand: str = DEFAULT_HAND) -> str:
    """Pass the sandbox session `giver` holds as `hand` to session `taker` (a sub-agent, or a second brain), which
    holds it as `as_hand`, logging it on both: `sandbox.handed` on the giver, which no longer holds it, and
    `sandbox.received` on the taker, whose next tool call on that hand attaches to it by id. Returns the sandbox id."""
    given = await SessionLog.open(store, giver)
    sandbox_id = live_sandbox_id(given.events, hand)
    if sandbox_id is None:
        raise SandboxError(f"session {giver} holds no sandbox as hand {hand!r} to hand over (none provisioned yet, or lost)")
    taken = await SessionLog.open(store, taker)
    await given.append(Event("sandbox.handed", {"sandbox_id": sandbox_id, "name": hand, "to": taker}))
    await taken.append(Event("sandbox.received", {"sandbox_id": sandbox_id, "name": as_hand, "from": giver}))
    return sandbox_id


class PetLost(SandboxError, ConnectionError):
    """The sandbox of a harness that cannot replace its hands is gone, and the session with it."""


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
        sandbox = await self.get(hand)
        try:
            return await sandbox.execute(name, input, key)
        except SandboxLost as exc:
            await self._lost(hand, sandbox.id, exc)
            if not self.replace_lost:
                raise PetLost(f"the sandbox holding this session was lost ({exc})") from None
            return ToolResult(
                f"the sandbox running this tool was lost ({exc}); the next tool call gets a fresh "
                "sandbox, in which earlier changes to files are gone",
                is_error=True,
            )

    async def get(self, hand: str | None = None) -> Sandbox:
        hand = hand or self.names[0]
        if hand not in self._sandboxes:
            sandbox_id = live_sandbox_id(self.log.events, hand)
            if sandbox_id is not None:
                try:
                    self._sandboxes[hand] = await self.provider.attach(sandbox_id)
                except SandboxLost as exc:
                    await self._lost(hand, sandbox_id, exc)
                    if not self.replace_lost:
                        raise PetLost(f"the sandbox holding this session is gone ({exc})") from None
            if hand not in self._sandboxes:
                self._sandboxes[hand] = await self._provision(hand)
        return self._sandboxes[hand]

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
        await self.log.append(
            Event(
                "sandbox.provisioned",
                {
                    "sandbox_id": sandbox.id,
                    "name": hand,
                    "hand": self.provider.hand,
                    "provision_ms": (provisioned - started) * 1000,
                    "setup_ms": (time.perf_counter() - provisioned) * 1000,
                    **(note or {}),
                },
            )
        )
        return sandbox

    async def _lost(self, hand: str, sandbox_id: str, exc: Exception) -> None:
        self._sandboxes.pop(hand, None)
        await self.log.append(
            Event("sandbox.lost", {"sandbox_id": sandbox_id, "name": hand, "hand": self.provider.hand, "reason": str(exc)})
        )
