"""The `anthropic` backend, pointed at a Messages-API emulator it starts on a free loopback port.

The SDK talks to the emulator over real HTTP, exactly as it would to the API. With `serve: in_process`
the server shares the caller's event loop (a thread of its own measured slower: GIL hand-offs); with
`serve: process` it runs in a process of its own, which no work of the harness can delay — what a
benchmark of the harness under load wants, since a real API is not slowed by its clients' CPU.

The emulator validates requests as the API does (`strict`, the default; docs/emulator.md), and knows the models
of harnesses/emulator/catalog.py and `models` (name: {context_window, max_output_tokens, prefill}).
With `client: bedrock|vertex|foundry` the SDK's client for that cloud talks to the emulator's route for that cloud
(harnesses/emulator/providers.py; docs/providers.md), with the region and project it needs filled in.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Mapping

from harnesses.emulator.catalog import model_table
from harnesses.emulator.providers import EMULATED_PROFILES, base_url
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import FaultProfile, LatencyProfile
from harnesses.models.anthropic import AnthropicModel
from harnesses.models.offline_brain import PolicyBook, load_policies

SERVE = ("in_process", "process")


class EmulatorModel(AnthropicModel):
    name = "emulator"

    def __init__(
        self,
        policies: PolicyBook | str,
        latency: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        latency_file: str | None = None,
        cache_min_tokens: int = 1024,
        model: str = "claude-emulated",
        serve: str = "in_process",
        strict: bool = True,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        **options: Any,
    ):
        if serve not in SERVE:
            raise ValueError(f"model.serve={serve!r}; valid: {', '.join(SERVE)}")
        if not isinstance(strict, bool):
            raise ValueError(f"model.strict={strict!r}; valid: true (validate requests as the API does) or false (loosely)")
        if serve == "process" and not isinstance(policies, str):
            raise ValueError("model.serve=process needs model.policies as an import path (e.g. experiments.tasks.policy_book)")
        super().__init__(model=model, api_key_env="", **options)
        self.profile = {**EMULATED_PROFILES.get(self.client, {}), **self.profile}
        self.latency = LatencyProfile.load(latency_file) if latency_file else LatencyProfile(**(latency or {}))
        self.faults, self.cache_min_tokens = FaultProfile(**(faults or {})), cache_min_tokens
        self.policies, self.serve, self.strict = policies, serve, strict
        known = model_table(models)  # a bad entry is refused now, not when the server starts
        self.models = {str(name): dict(limits) for name, limits in (models or {}).items()}  # plain, for a child's JSON
        if strict and model not in known:
            raise ValueError(f"model.model={model!r} is not a model the emulator knows; valid: "
                             f"{', '.join(known)}, or one added under model.models")
        self.server: EmulatorServer | None = None
        self.child: Any = None  # a processes.children.Child with serve=process

    async def _endpoint(self) -> tuple[str, str | None]:
        if self.serve == "process":
            self.base_url = await asyncio.to_thread(self._start_child)
        else:
            self.server = EmulatorServer(load_policies(self.policies), self.latency, self.faults, self.cache_min_tokens,
                                         self.strict, self.models)
            self.base_url = await self.server.start()
        # the emulator wants some key, as the API does; no real credential
        return "emulator", base_url(self.client, self.base_url)

    def _start_child(self) -> str:
        from processes.children import Child

        self.child = Child("harnesses.emulator.child", {
            "policies": self.policies, "latency": dataclasses.asdict(self.latency),
            "faults": dataclasses.asdict(self.faults), "cache_min_tokens": self.cache_min_tokens,
            "strict": self.strict, "models": self.models,
        })
        return self.child.start()["url"]

    def server_usage(self) -> tuple[float | None, float | None]:
        """The emulator process's peak memory (MB) and CPU time (s) with serve=process; None in-process, where
        they are the caller's."""
        return (self.child.peak_rss_mb(), self.child.cpu_s()) if self.child is not None else (None, None)

    async def close(self) -> None:
        await super().close()
        if self.server is not None:
            await self.server.stop()
        if self.child is not None:
            await asyncio.to_thread(self.child.stop)
