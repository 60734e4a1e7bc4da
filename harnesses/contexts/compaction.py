"""Compaction: past a token threshold, the model summarizes the session so far, and later contexts show
the task, the summary and the turns after it.

The summary is logged as a `context.compacted` event naming the positions it covers ([0, `to`)); the
originals stay in the log, so nothing is lost for good: another strategy, a replay or a fork sees them
all. The cut falls at the start of a turn, `keep_turns` turns back, so the turns after it keep every
tool_result next to its tool_use. The prefix is stable between compactions; each one resets it. A
compaction folds in at least half a threshold of new turns, so a summary that is itself near the
threshold is not rewritten at every call. It asks with the vocabulary's SUMMARIZE and shows the summary as
the model wrote it (the offline brain writes a calls block: harnesses/contexts/vocabulary.py).
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from harnesses.base import ContextStrategy, Model, ModelRequest
from harnesses.log import SessionLog
from harnesses.messages import content_text, events_to_messages, with_cache_breakpoint
from harnesses.contexts.vocabulary import SUMMARIZE, estimate_tokens
from stores.base import Event
from stores.events import ContextCompacted, ModelResponse, UserMessage


class CompactionContext(ContextStrategy):
    name = "compaction"

    def __init__(self, threshold_tokens: int = 6000, keep_turns: int = 2, max_tokens: int = 2048):
        if threshold_tokens < 1 or keep_turns < 0:
            raise ValueError(f"context.threshold_tokens must be >= 1 and keep_turns >= 0, got {threshold_tokens}, {keep_turns}")
        self.threshold_tokens, self.keep_turns, self.max_tokens = threshold_tokens, keep_turns, max_tokens

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        return with_cache_breakpoint(_view(events))

    async def before_call(self, session: SessionLog, model: Model) -> None:
        """Compact first if the context would be over the threshold and there are turns to fold in."""
        events = session.events
        tokens = estimate_tokens(_view(events))
        if tokens <= self.threshold_tokens:
            return
        since = _last_compaction(events)
        covered = since.to if since else 0
        if since is not None and _tokens_after(events, covered) < self.threshold_tokens // 2:
            return  # a summary near the threshold on its own must not be redone every turn: fold in half a threshold at least
        starts = [e.position for e in events if e.type == ModelResponse.TYPE and e.position > covered]
        to = starts[-self.keep_turns] if self.keep_turns else len(events)
        if len(starts) <= self.keep_turns or to <= covered:
            return
        messages = _ask(_view(events[:to]))
        started = time.perf_counter()
        response = await model.respond(ModelRequest(session.meta.get("system", ""), messages, [], self.max_tokens, purpose="compaction"))
        await session.append(ContextCompacted(
            content_text(response.content), to, tokens, response.usage.to_dict(), response.model, response.request_id,
            response.ttft_ms, response.latency_ms, compact_ms=(time.perf_counter() - started) * 1000,
        ).event())


def _view(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The conversation as this strategy shows it: the task and the latest summary, then what followed."""
    last = _last_compaction(events)
    if last is None:
        return events_to_messages(events)
    task = UserMessage.read(next(e for e in events if e.type == UserMessage.TYPE))
    head = {"role": "user", "content": [{"type": "text", "text": task.text}, {"type": "text", "text": last.summary}]}
    return [head, *events_to_messages(e for e in events[last.to:] if e.type != ContextCompacted.TYPE)]


def _tokens_after(events: Sequence[Event], position: int) -> int:
    return estimate_tokens(events_to_messages(e for e in events[position:] if e.type != ContextCompacted.TYPE))


def _last_compaction(events: Sequence[Event]) -> ContextCompacted | None:
    last = next((e for e in reversed(events) if e.type == ContextCompacted.TYPE), None)
    return ContextCompacted.read(last) if last is not None else None


def _ask(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation up to the cut, and the request to summarize it."""
    request = {"type": "text", "text": SUMMARIZE}
    if messages and messages[-1]["role"] == "user":
        return [*messages[:-1], {**messages[-1], "content": [*messages[-1]["content"], request]}]
    return [*messages, {"role": "user", "content": [request]}]
