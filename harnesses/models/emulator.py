"""The `anthropic` backend, pointed at a Messages-API emulator it starts on a free loopback port.

The SDK talks to the emulator over real HTTP, exactly as it would to the API. The server shares the
caller's event loop (a thread of its own measured slower: GIL hand-offs); for a service that no work
of the harness can delay, run `harnesslab emulator` in its own process and use model=anthropic with
its base_url.
"""
from __future__ import annotations

from typing import Any, Mapping

from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import FaultProfile, LatencyProfile
from harnesses.models.anthropic import AnthropicModel
from harnesses.policy import PolicyBook


class EmulatorModel(AnthropicModel):
    name = "emulator"

    def __init__(
        self,
        policies: PolicyBook,
        latency: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        latency_file: str | None = None,
        cache_min_tokens: int = 1024,
        model: str = "claude-emulated",
        **options: Any,
    ):
        super().__init__(model=model, api_key_env="", **options)
        profile = LatencyProfile.load(latency_file) if latency_file else LatencyProfile(**(latency or {}))
        self.server = EmulatorServer(policies, profile, FaultProfile(**(faults or {})), cache_min_tokens)

    async def _endpoint(self) -> tuple[str, str | None]:
        self.base_url = await self.server.start()
        return "emulator", self.base_url  # the emulator wants some key, as the API does; no real credential

    async def close(self) -> None:
        await super().close()
        await self.server.stop()
