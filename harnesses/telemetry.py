"""What a `model.response` event carries besides the answer: usage, timings, retries, and how the context was
built; and, for the first call of a turn, where the time to its first token went."""
from __future__ import annotations

import dataclasses
from typing import Any

from harnesses.base import ModelResponse
from harnesses.messages import stable_prefix
from harnesses.steps import CallModel
from stores import events as logged


def response_data(response: ModelResponse, requested: float, context_ms: float, strategy: str,
                  messages: list[dict[str, Any]], previous: list[dict[str, Any]] | None) -> logged.ModelResponse:
    """The `model.response` of one call, sent at `requested` (time.time()) with `messages`, which took
    `context_ms` to build; `previous` is this wake's last call's messages (None before its first)."""
    return logged.ModelResponse(
        content=response.content, stop_reason=response.stop_reason, usage=response.usage.to_dict(), model=response.model,
        request_id=response.request_id, requested_at=requested, ttft_ms=response.ttft_ms,
        server_ttft_ms=response.server_ttft_ms, latency_ms=response.latency_ms, context_ms=context_ms,
        retries=list(response.retries), context_management=response.context_management,
        # how much of this call's context the last one had too (a prompt cache can serve it); unknown after a wake
        context={"strategy": strategy, "messages": len(messages),
                 "stable_messages": stable_prefix(previous, messages) if previous is not None else None},
    )


def turn_timing(call: logged.ModelResponse, step: CallModel, requested: float, woke: float,
                provision_ms: float) -> logged.ModelResponse:
    """`call`, the first of a turn, with the time from the user message in the log to the reply's first token, and
    its parts (waiting for a harness, hands readied before this call, building the context, the model's TTFT)."""
    turn_ttft = (requested - step.turn_started) * 1000 + call.ttft_ms
    parts = {
        "queue_ms": max(0.0, (woke - step.turn_started) * 1000),
        "provision_ms": provision_ms,
        "context_ms": call.context_ms,
        "model_ttft_ms": call.ttft_ms,
    }
    return dataclasses.replace(call, turn_ttft_ms=turn_ttft,
                               turn_breakdown={**parts, "other_ms": max(0.0, turn_ttft - sum(parts.values()))})
