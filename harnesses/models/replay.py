"""Answers with the model responses of recorded sessions: re-run a logged session with no model.

Two ways to match a request to a recording:
- by conversation (the default, for re-running a whole sweep under its own config): the recorded session
  with the same first user message whose model saw exactly these messages before its k-th response
  (prompt-cache markers aside) answers with that response;
- by position (`session=ID`, for one session under any harness, context or sandbox): the k-th call gets
  the k-th response that session logged after position `after`, whatever the context looks like now.
  Turn calls are answered from `model.response` events, compaction calls from `context.compacted` ones.
Anything else is a divergence, reported with its position.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from harnesses.base import Model, ModelError, ModelRequest, ModelResponse, Usage
from harnesses.messages import events_to_messages, without_cache_marks
from harnesses.models.offline_brain import Conversation
from stores import events as logged
from stores.base import SessionStore


class Divergence(ModelError):
    """The run asked something the recording never answered."""


@dataclass(frozen=True, slots=True)
class RecordedCall:
    session_id: str
    position: int  # of the model.response (or context.compacted) in the recorded log
    messages: list[dict[str, Any]]  # what that model call saw
    response: logged.ModelResponse | logged.ContextCompacted


class ReplayModel(Model):
    name = "replay"

    def __init__(self, recording: SessionStore, session: str | None = None, after: int = 0):
        self.recording, self.session, self.after = recording, session, after
        self._calls: dict[str, list[list[RecordedCall]]] | None = None  # prompt -> sessions -> calls
        self._queues: dict[str, deque[RecordedCall]] | None = None  # purpose -> the session's calls, in order
        self.answered = 0

    async def start(self) -> None:
        if self.session is not None:
            await self._load_session()
        elif self._calls is None:
            self._calls = {}
            for info in await self.recording.sessions():
                events = await self.recording.events(info.id)
                calls = [
                    RecordedCall(info.id, e.position, events_to_messages(events[: e.position]), logged.ModelResponse.read(e))
                    for e in events if e.type == logged.ModelResponse.TYPE
                ]
                if calls:
                    self._calls.setdefault(Conversation(calls[0].messages).prompt, []).append(calls)

    async def respond(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        await self.start()
        if self._queues is not None:
            return self._by_position(request.purpose, started)
        messages = without_cache_marks(request.messages)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        sessions = self._calls.get(Conversation(messages).prompt, [])
        for calls in sessions:
            if turn < len(calls) and calls[turn].messages == messages:
                return _response(calls[turn], started)
        raise _divergence(messages, turn, sessions)

    async def close(self) -> None:
        await self.recording.close()

    async def _load_session(self) -> None:
        if self._queues is not None:
            return
        events = [e for e in await self.recording.events(self.session) if e.position >= self.after]
        summaries = [RecordedCall(self.session, e.position, [], logged.ContextCompacted.read(e))
                     for e in events if e.type == logged.ContextCompacted.TYPE]
        turns = [RecordedCall(self.session, e.position, [], logged.ModelResponse.read(e))
                 for e in events if e.type == logged.ModelResponse.TYPE]
        self._queues = {"turn": deque(turns), "compaction": deque(summaries)}

    def _by_position(self, purpose: str, started: float) -> ModelResponse:
        queue = self._queues.get(purpose)
        if not queue:
            left = "none" if queue is None else "no more"
            raise Divergence(
                f"replay of session {self.session} has {left} {purpose!r} responses after position {self.after}: "
                f"this run asks for more model calls than the recording made ({self.answered} answered)"
            )
        self.answered += 1
        return _response(queue.popleft(), started)


def _response(call: RecordedCall, started: float) -> ModelResponse:
    recorded = call.response
    edits = None
    if isinstance(recorded, logged.ContextCompacted):
        content, stop_reason = [{"type": "text", "text": recorded.summary or ""}], "end_turn"
    else:
        content, stop_reason, edits = recorded.content, recorded.stop_reason or "end_turn", recorded.context_management
    elapsed = (time.perf_counter() - started) * 1000
    return ModelResponse(
        content=content, stop_reason=stop_reason, usage=Usage(**recorded.usage),
        ttft_ms=elapsed, latency_ms=elapsed, model=f"replay:{recorded.model or ''}",
        request_id=f"replay:{call.session_id}:{call.position}", context_management=edits,
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
