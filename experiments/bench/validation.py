"""What the emulator's request validation costs: a realistic request (a task, 19 tool_use / tool_result turns and a
last user turn with a cache breakpoint, the sandbox's tools, a system prompt) checked strictly and loosely, side
by side. The target: strict validation adds at most 0.2 ms p50 per request (issue 21)."""
from __future__ import annotations

import json
import timeit
from typing import Any

from experiments.bench.targets import target
from experiments.stats import percentile

ADDED_TARGET_MS = 0.2


def realistic_request(turns: int = 19) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of a mid-session request, as a harness sends it (JSON round-tripped, as received)."""
    from sandboxes.tools import TOOLS

    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Find the needle in the logs and write it to answer.txt."}]},
        {"role": "user", "content": "(two user messages in a row: the API combines them)"},
    ]
    for i in range(turns):
        use = {"type": "tool_use", "id": f"toolu_{i:016x}_0", "name": "read_file", "input": {"path": f"logs/{i}.log"}}
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"Reading log {i}."}, use]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use["id"], "content": "x" * 600, "is_error": False}]})
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    body = {"model": "claude-emulated", "max_tokens": 4096, "system": "You are a careful agent.",
            "tools": [spec.to_api() for spec in TOOLS.values()], "messages": messages, "stream": True}
    return json.loads(json.dumps(body)), {"anthropic-version": "2023-06-01", "x-api-key": "k"}


def per_request_ms(strict: bool, repeats: int) -> list[float]:
    from harnesses.emulator.catalog import model_table
    from harnesses.emulator.validation import validate

    body, headers = realistic_request()
    models = model_table()
    validate(body, headers, models, strict)  # its first call reads the SDK's types: not what a request costs
    runs = timeit.repeat(lambda: validate(body, headers, models, strict), number=100, repeat=repeats)
    return [run / 100 * 1000 for run in runs]


def main(quick: bool) -> None:
    repeats = 10 if quick else 50
    print(f"\nemulator request validation, a 40-message request with tools ({repeats} x 100 each)")
    print(f"  {'mode':<8} {'p50 ms':>9} {'p95 ms':>9}")
    p50 = {}
    for mode, strict in (("strict", True), ("loose", False)):
        timings = per_request_ms(strict, repeats)
        p50[mode] = percentile(timings, 0.5)
        print(f"  {mode:<8} {p50[mode]:>9.3f} {percentile(timings, 0.95):>9.3f}")
    print(f"  {target('strict validation adds, p50 per request', p50['strict'] - p50['loose'], '<=', ADDED_TARGET_MS, ' ms')}")
