"""Extended thinking, emulated: with `thinking` on, the answer starts with a thinking block that says what the brain
saw and what it does next, signed as the emulator signs its blocks (harnesses/emulator/signatures.py).

The text is deterministic, derived from the request's messages and the brain's answer; parameters.honour cuts it to
the budget and to max_tokens and bills it in output_tokens. A seeded share comes as `redacted_thinking` (opaque
data); with `display: omitted` the text is left out and the signature kept, so the block can still be passed back.

Sources: https://docs.claude.com/en/docs/build-with-claude/extended-thinking (thinking blocks, their signatures,
#thinking-redaction), anthropic.types.ThinkingConfigEnabledParam.display ("When set to `omitted`, thinking content
is redacted but a signature is returned for multi-turn continuity"; billing does not change).
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any, Mapping, Sequence

from harnesses.emulator.signatures import genuine, sign
from harnesses.models.offline_brain import Conversation

REDACTED_SHARE = 0.05  # of thinking blocks that come redacted
THINKING_TYPES = ("enabled", "adaptive")  # the configs that turn thinking on
_SHOWN_CHARS = 100  # of a task, an input or an output quoted in the thinking
_OMITTED = "omitted:"  # what an omitted block's signature signs, beside the signature of its thinking


def budget(body: Mapping[str, Any]) -> int | None:
    """The most tokens the request's thinking may take (enabled: its budget; adaptive: max_tokens), or None if off."""
    config = body.get("thinking") or {}
    if config.get("type") not in THINKING_TYPES:
        return None
    return min(config.get("budget_tokens", body["max_tokens"]), body["max_tokens"])


def reasoning(messages: Sequence[Mapping[str, Any]], content: Sequence[Mapping[str, Any]]) -> str:
    """What the brain thinks before it answers `messages` with `content`: the task, what the last call showed, and
    what it does next and why."""
    seen = Conversation(messages)
    lines = [_sentence(f"The task asks: {_quote(seen.prompt)}")]
    last = seen.last
    if last is None:
        lines.append("Nothing has run yet, so I start from the task itself.")
    elif last.output is None:
        lines.append(f"The last call, {last.name}({_quote(last.input)}), ran; its output is no longer shown.")
    else:
        outcome = "failed with" if last.is_error else "showed"
        lines.append(_sentence(f"The last call, {last.name}({_quote(last.input)}), {outcome}: {_quote(last.output)}"))
    uses = [b for b in content if b.get("type") == "tool_use"]
    if uses:
        calls = ", then ".join(f"{u['name']}({_quote(u.get('input', {}))})" for u in uses)
        why = "to try another way" if last is not None and last.is_error else "for what the task needs next"
        lines.append(f"Next I call {calls}, {why}.")
    else:
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
        lines.append(_sentence(f"I know enough to answer: {_quote(text)}") if text else "There is nothing more to say.")
    return "\n".join(lines)


def thinking_block(text: str, config: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The block `text` is shown in: redacted on a seeded share, without its text if `display` is omitted, else as
    it is; signed."""
    if rng.random() < REDACTED_SHARE:
        return {"type": "redacted_thinking", "data": _opaque(text)}
    if config.get("display") == "omitted":
        return {"type": "thinking", "thinking": "", "signature": omitted_signature(text)}
    return {"type": "thinking", "thinking": text, "signature": sign(text)}


def omitted_signature(text: str) -> str:
    """The signature of a block whose text was omitted: it stands for `text` (the signature of it), and signs that it
    stands for it, so the block comes back genuine with its empty text, as the API's omitted blocks do."""
    inner = sign(text)
    return f"{inner}.{sign(_OMITTED + inner)}"


def genuine_omitted(signature: str) -> bool:
    """Whether `signature` is one omitted_signature wrote (a block with empty text that carries it is unchanged)."""
    inner, dot, outer = signature.partition(".")
    return bool(dot) and genuine(_OMITTED + inner, outer)


def _opaque(text: str) -> str:
    """Redacted thinking's data: opaque, as long as the thinking it stands for, the same for the same thinking."""
    raw = text.encode("utf-8", "surrogatepass")
    return base64.b64encode(hashlib.shake_256(b"redacted:" + raw).digest(max(16, len(raw)))).decode()


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _quote(value: Any) -> str:
    """A value in a line of thinking: text as it is, anything else as JSON; on one line, cut short."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
