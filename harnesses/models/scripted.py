"""A deterministic in-process model that answers with the task's solver policy (no HTTP, no SDK)."""
from __future__ import annotations

import asyncio
import time

from harnesses.base import Model, ModelRequest, ModelResponse, Usage
from harnesses.contexts.vocabulary import estimate_tokens
from harnesses.models.offline_brain import PolicyBook, answer


class ScriptedModel(Model):
    """`policies` maps a request's messages to the policy that answers them (see experiments.tasks).

    `ttft_ms` and `ms_per_output_token` add a simulated latency; both default to zero.
    """

    name = "scripted"

    def __init__(self, policies: PolicyBook, ttft_ms: float = 0.0, ms_per_output_token: float = 0.0):
        self._book = policies
        self.ttft_ms, self.ms_per_output_token = ttft_ms, ms_per_output_token

    async def respond(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        content = answer(self._book, request.messages, request.tools)
        output_tokens = estimate_tokens(content)
        if self.ttft_ms:
            await asyncio.sleep(self.ttft_ms / 1000)
        ttft_ms = (time.perf_counter() - started) * 1000
        if self.ms_per_output_token:
            await asyncio.sleep(self.ms_per_output_token * output_tokens / 1000)
        return ModelResponse(
            content=content,
            stop_reason="tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
            usage=Usage(estimate_tokens([request.system, request.tools, request.messages]), output_tokens),
            ttft_ms=ttft_ms,
            latency_ms=(time.perf_counter() - started) * 1000,
            model=self.name,
        )
