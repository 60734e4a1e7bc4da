"""A deterministic in-process model that answers with the task's solver policy."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from harnesses.base import ModelRequest, ModelResponse, Usage
from harnesses.policy import Call, Conversation, PolicyBook, Reply


def estimate_tokens(payload: Any) -> int:
    """About four characters of JSON per token: the same estimate for every offline model."""
    return max(1, len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)) // 4)


class ScriptedModel:
    """`policies` maps a request's messages to the policy that answers them (see experiments.tasks).

    `ttft_ms` and `ms_per_output_token` add a simulated latency; both default to zero.
    """

    name = "scripted"

    def __init__(self, policies: PolicyBook, ttft_ms: float = 0.0, ms_per_output_token: float = 0.0):
        self._book = policies
        self.ttft_ms, self.ms_per_output_token = ttft_ms, ms_per_output_token

    async def respond(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        conversation = Conversation(request.messages)
        policy = self._book(request.messages)
        action = policy(conversation) if policy else Reply(
            f"The scripted model has no solver policy for the task {conversation.prompt[:80]!r}."
        )
        content = _content(action, turn=sum(1 for m in request.messages if m["role"] == "assistant") + 1)
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


def _content(action: Any, turn: int) -> list[dict[str, Any]]:
    if isinstance(action, Reply):
        return [{"type": "text", "text": action.text}]
    calls = [action] if isinstance(action, Call) else list(action)
    return [
        {"type": "tool_use", "id": f"toolu_{turn:04d}_{i}", "name": c.name, "input": c.input}
        for i, c in enumerate(calls)
    ]

