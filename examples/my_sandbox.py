"""A sandbox provider: wraps any other provider (its `inner`) and counts the sandboxes it provisions and attaches.
What the runners ask of a provider (isolated, outliving the process, keep, journal) is the inner one's (ProviderOver).

    PYTHONPATH=. harnesslab run hydra.searchpath=[file://examples/configs] sandbox=counting
"""
from __future__ import annotations

from sandboxes.base import ProviderOver, Sandbox, SandboxProvider


class CountingProvider(ProviderOver):
    def __init__(self, inner: SandboxProvider):
        super().__init__(inner)
        self.provisioned = self.attached = 0

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
