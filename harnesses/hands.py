"""A session's hands: provisioned at the first tool call that needs them, replaced when lost."""
from __future__ import annotations

import time

from harnesses.log import SessionLog
from sandboxes.base import Fetch, Sandbox, SandboxError, SandboxLost, SandboxProvider, Setup, ToolResult
from stores.base import Event, SessionStore


def live_sandbox_id(events: list[Event]) -> str | None:
    """The sandbox the log says this session holds: provisioned or received, and not lost or handed on since."""
    current = None
    for event in events:
        if event.type in ("sandbox.provisioned", "sandbox.received"):
            current = event.data.get("sandbox_id")
        elif event.type in ("sandbox.lost", "sandbox.handed") and event.data.get("sandbox_id") == current:
            current = None
    return current


async def hand_over(store: SessionStore, giver: str, taker: str) -> str:
    """Pass the sandbox session `giver` holds to session `taker` (a sub-agent, or a second brain), logging it on both:
    `sandbox.handed` on the giver, which holds no sandbox after it, and `sandbox.received` on the taker, whose next
    tool call attaches to it by id. Returns the sandbox id."""
    given = await SessionLog.open(store, giver)
    sandbox_id = live_sandbox_id(given.events)
    if sandbox_id is None:
        raise SandboxError(f"session {giver} holds no sandbox to hand over (none provisioned yet, or lost)")
    taken = await SessionLog.open(store, taker)
    await given.append(Event("sandbox.handed", {"sandbox_id": sandbox_id, "to": taker}))
    await taken.append(Event("sandbox.received", {"sandbox_id": sandbox_id, "from": giver}))
    return sandbox_id


class PetLost(SandboxError, ConnectionError):
    """The sandbox of a harness that cannot replace its hands is gone, and the session with it."""


class Hands:
    """`replace_lost=False` is the coupled design: the session lives and dies with its one sandbox."""

    def __init__(self, provider: SandboxProvider, log: SessionLog, replace_lost: bool = True, fetch: Fetch | None = None):
        self.provider, self.log, self.replace_lost = provider, log, replace_lost
        self.fetch = fetch  # clones the setup's repositories (through the credential proxy)
        self._sandbox: Sandbox | None = None
        self.provision_ms = 0.0  # spent provisioning and preparing, in this wake

    @property
    def sandbox_id(self) -> str | None:
        return self._sandbox.id if self._sandbox else live_sandbox_id(self.log.events)

    async def execute(self, name: str, input: dict, key: str | None = None) -> ToolResult:
        sandbox = await self.get()
        try:
            return await sandbox.execute(name, input, key)
        except SandboxLost as exc:
            await self._lost(sandbox.id, exc)
            if not self.replace_lost:
                raise PetLost(f"the sandbox holding this session was lost ({exc})") from None
            return ToolResult(
                f"the sandbox running this tool was lost ({exc}); the next tool call gets a fresh "
                "sandbox, in which earlier changes to files are gone",
                is_error=True,
            )

    async def get(self) -> Sandbox:
        if self._sandbox is None:
            sandbox_id = live_sandbox_id(self.log.events)
            if sandbox_id is not None:
                try:
                    self._sandbox = await self.provider.attach(sandbox_id)
                except SandboxLost as exc:
                    await self._lost(sandbox_id, exc)
                    if not self.replace_lost:
                        raise PetLost(f"the sandbox holding this session is gone ({exc})") from None
            if self._sandbox is None:
                self._sandbox = await self._provision()
        return self._sandbox

    async def fresh(self, **note) -> Sandbox:
        """A new sandbox for this session, whatever the log says (a fork gets hands of its own); `note` is logged."""
        self._sandbox = await self._provision(note)
        return self._sandbox

    async def _provision(self, note: dict | None = None) -> Sandbox:
        started = time.perf_counter()
        sandbox = await self.provider.provision()
        provisioned = time.perf_counter()
        await sandbox.prepare(Setup.from_meta(self.log.meta.get("setup")), self.fetch)
        self.provision_ms += (time.perf_counter() - started) * 1000
        await self.log.append(
            Event(
                "sandbox.provisioned",
                {
                    "sandbox_id": sandbox.id,
                    "hand": self.provider.hand,
                    "provision_ms": (provisioned - started) * 1000,
                    "setup_ms": (time.perf_counter() - provisioned) * 1000,
                    **(note or {}),
                },
            )
        )
        return sandbox

    async def _lost(self, sandbox_id: str, exc: Exception) -> None:
        self._sandbox = None
        await self.log.append(
            Event("sandbox.lost", {"sandbox_id": sandbox_id, "hand": self.provider.hand, "reason": str(exc)})
        )
