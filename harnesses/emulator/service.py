"""What the emulated service does besides answering: latency, prompt caching, faults.

Token counts use one stated approximation (`harnesses.contexts.vocabulary.estimate_tokens`: four characters of
JSON per token), for input and output alike.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from harnesses.contexts.vocabulary import estimate_tokens


@dataclass(frozen=True)
class LatencyProfile:
    """TTFT = (base + prefill of uncached input + prefill of cached input) x lognormal jitter;
    output then streams at `output_tokens_per_s`."""

    base_ttft_ms: float = 40.0
    prefill_ms_per_1k_tokens: float = 4.0
    cached_prefill_ms_per_1k_tokens: float = 0.4
    output_tokens_per_s: float = 400.0
    jitter_sigma: float = 0.2  # of the lognormal multiplier (median 1); 0 for none
    seed: int = 0

    def ttft_ms(self, uncached_tokens: int, cached_tokens: int, rng: random.Random) -> float:
        nominal = (
            self.base_ttft_ms
            + self.prefill_ms_per_1k_tokens * uncached_tokens / 1000
            + self.cached_prefill_ms_per_1k_tokens * cached_tokens / 1000
        )
        return nominal * (rng.lognormvariate(0.0, self.jitter_sigma) if self.jitter_sigma else 1.0)

    def output_s(self, output_tokens: int) -> float:
        return output_tokens / self.output_tokens_per_s if self.output_tokens_per_s > 0 else 0.0

    def rng_for(self, request: Mapping[str, Any]) -> random.Random:
        """Jitter seeded by the request itself: the same request gets the same latency, in any order."""
        digest = hashlib.blake2b(json.dumps([self.seed, request], sort_keys=True, default=str).encode(), digest_size=8)
        return random.Random(int.from_bytes(digest.digest(), "big"))

    @classmethod
    def load(cls, path: str | Path) -> LatencyProfile:
        import yaml

        return cls(**(yaml.safe_load(Path(path).read_text()) or {}))

    def save(self, path: str | Path, comment: str = "") -> None:
        import yaml

        header = "".join(f"# {line}\n" for line in comment.splitlines())
        Path(path).write_text(header + yaml.safe_dump(asdict(self), sort_keys=False))


FAULT_KINDS = ("rate_limit", "overloaded", "server_error", "disconnect")


@dataclass(frozen=True)
class FaultProfile:
    """Per-request probabilities of each fault; `disconnect` cuts a stream after its first deltas."""

    rate_limit: float = 0.0  # 429 with retry-after
    overloaded: float = 0.0  # 529
    server_error: float = 0.0  # 500
    disconnect: float = 0.0
    retry_after_s: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        total = sum(getattr(self, kind) for kind in FAULT_KINDS)
        if any(getattr(self, kind) < 0 for kind in FAULT_KINDS) or total > 1:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1, got {total:g}")

    def stream(self) -> random.Random:
        """The fault stream `draw` takes from: one per server, from `seed` (a fault run's worker
        processes each get a seed of their own, experiments/faults/kinds.py)."""
        return random.Random(self.seed)

    def draw(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for kind in FAULT_KINDS:
            roll -= getattr(self, kind)
            if roll < 0:
                return kind
        return None


class PromptCache:
    """Prefixes ending at a `cache_control` breakpoint, in the API's order: tools, system, messages.

    A request reads the longest cached prefix and writes every breakpoint after it, as the API does;
    prefixes shorter than `min_tokens` are not cached. Entries live `ttl_s` seconds from their last use.
    """

    LOOKBACK = 20  # blocks before a breakpoint where an earlier cached prefix is found

    def __init__(self, min_tokens: int = 1024, ttl_s: float = 300.0):
        self.min_tokens, self.ttl_s = min_tokens, ttl_s
        self._expires: dict[str, float] = {}

    def usage(self, request: Mapping[str, Any]) -> dict[str, int]:
        """input_tokens, cache_read_input_tokens and cache_creation_input_tokens for `request`.

        Like the API, a breakpoint also finds a prefix cached by an earlier request that ended up to
        `LOOKBACK` blocks before it, so a conversation that grows by a few blocks per call reads its past.
        """
        prefixes: list[tuple[int, str, bool]] = []  # (tokens so far, digest so far, breakpoint here)
        running, digest = 0, hashlib.blake2b(digest_size=16)
        for segment, marked in _segments(request):
            digest.update(json.dumps(segment, sort_keys=True).encode())
            running += estimate_tokens(segment)
            prefixes.append((running, digest.copy().hexdigest(), marked and running >= self.min_tokens))
        now = time.monotonic()
        marks = [i for i, (_, _, marked) in enumerate(prefixes) if marked]
        read = max(
            (prefixes[j][0] for i in marks for j in range(max(0, i - self.LOOKBACK), i + 1)
             if self._expires.get(prefixes[j][1], 0) > now),
            default=0,
        )
        written = prefixes[marks[-1]][0] - read if marks and prefixes[marks[-1]][0] > read else 0
        for i in marks:
            self._expires[prefixes[i][1]] = now + self.ttl_s
        return {"input_tokens": running - read - written, "cache_read_input_tokens": read, "cache_creation_input_tokens": written}


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Input tokens of a request: what count_tokens reports, and what usage adds up to."""
    return sum(estimate_tokens(segment) for segment, _ in _segments(request))


# As compact as the estimate's JSON (its escapes only lengthen it); a parsed body cannot be circular, so no check
_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_PART_OVERHEAD = len('{"role":"assistant","type":"text","text":}')  # what a segment adds to its block's JSON, at most


def prompt_tokens_at_most(request: Mapping[str, Any]) -> int:
    """An upper bound on prompt_tokens(request) from one encoding of the whole request, a few times cheaper: for a
    limit that needs the exact count only when the bound reaches it. Each segment's JSON is a part of the request's
    plus at most a role and a text wrapper, and counts at most a quarter of its length plus one."""
    system, messages = request.get("system"), request.get("messages", [])
    parts = (len(request.get("tools") or []) + (len(system) if isinstance(system, list) else 1)
             + sum(len(m["content"]) if isinstance(m.get("content"), list) else 1 for m in messages))
    encoded = len(_COMPACT.encode([request.get("tools"), system, messages]))
    return (encoded + _PART_OVERHEAD * parts) // 4 + parts


def _segments(request: Mapping[str, Any]) -> list[tuple[Any, bool]]:
    """(segment without its cache_control, whether it carried one), in prefix order. Thinking blocks of earlier turns
    are not input: the API strips them (THINKING_STRIPPED)."""
    system = request.get("system") or []
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    parts: list[Any] = list(request.get("tools") or []) + blocks
    messages = request.get("messages", [])
    current = _current_turn(messages)
    for at, message in enumerate(messages):
        content = message.get("content")
        items = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        parts += [{"role": message.get("role"), **item} for item in items if at >= current or item.get("type") not in THINKING_BLOCKS]
    return [({k: v for k, v in part.items() if k != "cache_control"}, "cache_control" in part) for part in parts]


# "previous thinking blocks are automatically stripped from the context window calculation by the Claude API": those
# before the current turn, which a user message that answers no tool use begins; in a tool-use loop the turn's own
# thinking is passed back and counted (https://docs.claude.com/en/docs/build-with-claude/context-windows, "The context
# window with extended thinking" and "... with extended thinking and tool use").
THINKING_BLOCKS = ("thinking", "redacted_thinking")


def _current_turn(messages: Sequence[Mapping[str, Any]]) -> int:
    """Where the current turn begins: the index of the last user turn (consecutive user messages, combined as the API
    combines them) that holds no tool_result; 0 if there is none."""
    start = 0
    for role, turn in itertools.groupby(enumerate(messages), key=lambda item: item[1].get("role")):
        turn = list(turn)
        if role == "user" and not any(_answers_tool_use(message) for _, message in turn):
            start = turn[0][0]
    return start


def _answers_tool_use(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)

