"""A warm pool over any provider: sandboxes provisioned ahead, handed out once each, refilled behind.

`provision` takes a ready sandbox (checking it is still alive) and starts provisioning its
replacement; when none is ready it provisions one directly, as the inner provider would. A sandbox is
never handed out twice: it leaves the pool when it is handed out, and whoever holds it closes it.
"""
from __future__ import annotations

import asyncio
import collections
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from sandboxes.base import ProviderOver, Sandbox, SandboxProvider, WorkerSandboxes


class PoolProvider(ProviderOver):
    def __init__(self, inner: SandboxProvider, size: int = 4):
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        super().__init__(inner)
        self.size = size
        self._ready: collections.deque[Sandbox] = collections.deque()
        self._filling: set[asyncio.Task] = set()
        self._closed = False
        self.handed_out = self.cold_starts = self.discarded = 0
        self.last_error: Exception | None = None  # of the last refill that failed

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], journal: Path) -> AsyncIterator[WorkerSandboxes]:
        """The inner provider's (the config's `inner`, composed with its `_target_`); the driver has the inner provider
        alone: it only reaches and removes the workers' sandboxes, and a pool of its own would provision for nobody."""
        from hydra.utils import get_class

        inner = options["inner"]
        async with get_class(inner["_target_"]).for_workers(inner, journal) as shared:
            yield WorkerSandboxes({**options, "inner": shared.workers}, shared.driver)

    async def start(self) -> None:
        """Fill the pool before the first session needs it."""
        self._refill()
        await asyncio.gather(*self._filling)

    async def provision(self) -> Sandbox:
        self._refill()
        while self._ready:
            sandbox = self._ready.popleft()
            self._refill()
            if await sandbox.alive():
                self.handed_out += 1
                return sandbox
            self.discarded += 1
            await sandbox.close()
        self.cold_starts += 1
        return await self.inner.provision()

    async def attach(self, sandbox_id: str) -> Sandbox:
        return await self.inner.attach(sandbox_id)

    async def close(self) -> None:
        """Stop refilling, close every sandbox still waiting, then the inner provider, whatever failed before
        (closing, it removes what it made and a failure here left behind)."""
        self._closed = True
        for task in list(self._filling):
            task.cancel()
        try:
            await asyncio.gather(*self._filling, return_exceptions=True)
            while self._ready:
                await self._ready.popleft().close()
        finally:
            await self.inner.close()

    def _refill(self) -> None:
        # a finished task has added its sandbox to _ready already; its discard from _filling may not have run yet
        missing = self.size - len(self._ready) - sum(not task.done() for task in self._filling)
        for _ in range(0 if self._closed else missing):
            task = asyncio.get_running_loop().create_task(self._add_one())
            self._filling.add(task)
            task.add_done_callback(self._filling.discard)

    async def _add_one(self) -> None:
        try:
            sandbox = await self.inner.provision()
        except Exception as exc:  # provision() then provisions directly, and its caller sees the error
            self.last_error = exc
            return
        if self._closed:
            await sandbox.close()
        else:
            self._ready.append(sandbox)
