"""Server compaction (`compact_20260112`, beta `compact-2026-01-12`), emulated as the compaction guide documents it:
when the prompt the model would read exceeds the edit's trigger (input tokens; default 150,000), the server first
summarizes it (a sampling step of its own, billed as a `compaction` iteration of usage.iterations, and not in the
top-level usage), then answers from the summary alone. The answer starts with the `compaction` block; with
`pause_after_compaction` it is the block alone, `stop_reason: "compaction"`. A later request that sends the block
back has every message before it dropped (harnesses/emulator/context_edits.py).

The summary is the offline brain's (harnesses/models/offline_brain.py, `compaction_summary`): a calls block that
restates the task, since nothing before the block is read again. `instructions` are taken, and this brain has no
use for them.

Sources: https://platform.claude.com/docs/en/build-with-claude/compaction; anthropic.types.beta's
BetaCompact20260112EditParam, BetaCompactionBlock, BetaUsage.iterations and BetaCompactionIterationUsage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harnesses.contexts.vocabulary import estimate_tokens
from harnesses.emulator.context_edits import COMPACT
from harnesses.emulator.service import prompt_tokens
from harnesses.models.offline_brain import compaction_summary

DEFAULT_TRIGGER = 150_000  # input tokens, BetaCompact20260112EditParam.trigger


@dataclass(frozen=True, slots=True)
class Compaction:
    block: dict[str, Any]  # the compaction block the answer starts with
    body: dict[str, Any]  # the prompt the answer is made from: the summary in place of the conversation
    usage: dict[str, Any]  # the compaction iteration of usage.iterations
    pause: bool  # pause_after_compaction: the answer is the block alone


def compaction_edit(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("context_management")
    edits = (config.get("edits") or []) if isinstance(config, dict) else []
    return next((e for e in edits if isinstance(e, dict) and e.get("type") == COMPACT), None)


def trigger_tokens(edit: dict[str, Any]) -> int:
    return (edit.get("trigger") or {}).get("value", DEFAULT_TRIGGER)


def compact(body: dict[str, Any], prompt: dict[str, Any]) -> Compaction | None:
    """The compaction `body`'s compact edit makes of `prompt` (what the model would read), or None if it asks for
    none or the prompt is within its trigger."""
    edit = compaction_edit(body)
    if edit is None or prompt_tokens(prompt) <= trigger_tokens(edit):
        return None
    return _summarized(prompt, bool(edit.get("pause_after_compaction", False)))


def summarize(body: dict[str, Any], prompt: dict[str, Any]) -> Compaction:
    """The on-demand form (`compaction: {"type": "summarize"}`): the whole conversation summarized, whatever its
    length, and the answer is the compaction block alone (MessageCreateParams.compaction)."""
    return _summarized(prompt, pause=True)


def _summarized(prompt: dict[str, Any], pause: bool) -> Compaction:
    tokens = prompt_tokens(prompt)
    summary = compaction_summary(prompt["messages"])
    block = {"type": "compaction", "content": summary}
    usage = {"type": "compaction", "input_tokens": tokens, "output_tokens": estimate_tokens(summary),
             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    compacted = {**prompt, "messages": [{"role": "assistant", "content": [block]}]}
    return Compaction(block, compacted, usage, pause)
