"""A model: answers every request with the task's solver policy, like the scripted model, and counts its calls.
A real backend would call its API in `respond` (and open its client in `start`, release it in `close`).

    PYTHONPATH=. harnesslab run model=scripted model._target_=examples.my_model.CountingModel
"""
from __future__ import annotations

import time

from harnesses.base import Model, ModelRequest, ModelResponse, Usage
from harnesses.contexts.vocabulary import estimate_tokens
from harnesses.models.offline_brain import PolicyBook, answer


class CountingModel(Model):
    name = "counting"

    def __init__(self, policies: PolicyBook):
        self._book = policies
        self.calls = 0

    async def respond(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        self.calls += 1
        content = answer(self._book, request.messages, request.tools)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return ModelResponse(
            content=content,
            stop_reason="tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
            usage=Usage(estimate_tokens([request.system, request.tools, request.messages]), estimate_tokens(content)),
            ttft_ms=elapsed_ms,
            latency_ms=elapsed_ms,
            model=self.name,
        )

    async def close(self) -> None:
        print(f"counting model: {self.calls} call(s)")
