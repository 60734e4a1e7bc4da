"""A sandbox provider: wraps any other provider (its `inner`) and counts the sandboxes it provisions and attaches.
What the runners ask of a provider (isolated, outliving the process, keep, journal) is the inner one's.

    PYTHONPATH=. harnesslab run hydra.searchpath=[file://examples/configs] sandbox=counting
"""
from __future__ import annotations

from typing import Sequence

from sandboxes.base import Sandbox, SandboxProvider
from sandboxes.journal import Journal
from sandboxes.tools import ToolSpec


class CountingProvider(SandboxProvider):
    def __init__(self, inner: SandboxProvider):
        self.inner = inner
        self.hand = inner.hand
        self.provisioned = self.attached = 0

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return self.inner.tools

    @property
    def isolated(self) -> bool:
        return self.inner.isolated

    @property
    def sandboxes_outlive_process(self) -> bool:
        return self.inner.sandboxes_outlive_process

    @property
    def keep(self) -> bool:
        return self.inner.keep

    @property
    def journal(self) -> Journal | None:
        return self.inner.journal

    async def start(self) -> None:
        await self.inner.start()

    async def provision(self) -> Sandbox:
        self.provisioned += 1
        return await self.inner.provision()

    async def attach(self, sandbox_id: str) -> Sandbox:
        self.attached += 1
        return await self.inner.attach(sandbox_id)

    async def close(self) -> None:
        await self.inner.close()
        print(f"counting provider: {self.provisioned} provisioned, {self.attached} attached")
