"""Answers with the model.response events of recorded sessions: re-run a logged session with no model.

A request is matched to a recording by its conversation: the recorded session with the same first
user message whose model saw exactly these messages before its k-th response (prompt-cache markers
aside) answers with that response. Anything else is a divergence, reported with its position.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harnesses.base import ModelError, ModelRequest, ModelResponse, Usage
from harnesses.messages import events_to_messages, without_cache_marks
from harnesses.policy import Conversation
from stores.base import SessionStore


class Divergence(ModelError):
    """The run asked something the recording never answered."""


@dataclass(frozen=True, slots=True)
class RecordedCall:
    session_id: str
    position: int  # of the model.response in the recorded log
    messages: list[dict[str, Any]]  # what that model call saw
    response: dict[str, Any]  # the model.response data


class ReplayModel:
    name = "replay"

    def __init__(self, recording: SessionStore):
        self.recording = recording
        self._calls: dict[str, list[list[RecordedCall]]] | None = None  # prompt -> sessions -> calls

    async def start(self) -> None:
        if self._calls is None:
            self._calls = {}
            for info in await self.recording.sessions():
                events = await self.recording.events(info.id)
                calls = [
                    RecordedCall(info.id, e.position, events_to_messages(events[: e.position]), e.data)
                    for e in events if e.type == "model.response"
                ]
                if calls:
                    self._calls.setdefault(Conversation(calls[0].messages).prompt, []).append(calls)

    async def respond(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        await self.start()
        messages = without_cache_marks(request.messages)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        sessions = self._calls.get(Conversation(messages).prompt, [])
        for calls in sessions:
            if turn < len(calls) and calls[turn].messages == messages:
                return _response(calls[turn], started)
        raise _divergence(messages, turn, sessions)

    async def close(self) -> None:
        await self.recording.close()


def _response(call: RecordedCall, started: float) -> ModelResponse:
    data = call.response
    elapsed = (time.perf_counter() - started) * 1000
    return ModelResponse(
        content=data["content"], stop_reason=data.get("stop_reason", "end_turn"), usage=Usage(**data.get("usage", {})),
        ttft_ms=elapsed, latency_ms=elapsed, model=f"replay:{data.get('model', '')}",
        request_id=f"replay:{call.session_id}:{call.position}",
    )


def _divergence(messages: list[dict[str, Any]], turn: int, sessions: list[list[RecordedCall]]) -> Divergence:
    if not sessions:
        return Divergence(f"replay: no recorded session starts with {Conversation(messages).prompt[:80]!r}")
    closest = max(sessions, key=lambda calls: _common_prefix(calls[min(turn, len(calls) - 1)].messages, messages))
    if turn >= len(closest):
        return Divergence(f"replay diverged from session {closest[0].session_id}: it made {len(closest)} model calls, "
                          f"this run asks for call {turn + 1}")
    call = closest[turn]
    index = _common_prefix(call.messages, messages)
    return Divergence(
        f"replay diverged from session {call.session_id} before its model.response at position {call.position}: "
        f"message {index} differs (recorded: {_brief(call.messages, index)}; now: {_brief(messages, index)})"
    )


def _common_prefix(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _brief(messages: list[dict[str, Any]], index: int) -> str:
    return repr(messages[index])[:160] if index < len(messages) else "nothing"
