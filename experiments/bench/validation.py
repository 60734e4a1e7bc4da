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


FLOOR = dict(base_ttft_ms=0, prefill_ms_per_1k_tokens=0, cached_prefill_ms_per_1k_tokens=0, jitter_sigma=0,
             output_tokens_per_s=1e9)  # the emulator waits for nothing: what remains is HTTP, the SDK and its own work


async def sdk_measured(quick: bool) -> None:
    """The same realistic request through the official SDK to two `harnesslab emulator` processes, one strict and one
    `--loose`, side by side: one stream at a time (alternating between them), then 500 at once to each in turn."""
    import tempfile
    from pathlib import Path

    from experiments.bench.emulator import serve
    from harnesses.emulator.service import LatencyProfile

    folder = Path(tempfile.mkdtemp(prefix="harnesslab-bench-validation-"))
    servers = {mode: serve(folder, mode, LatencyProfile(**FLOOR), *flags) for mode, flags in (("strict", ()), ("loose", ("--loose",)))}
    try:
        one = await _one_at_a_time({mode: url for mode, (_, url) in servers.items()}, 60 if quick else 300)
        together = {mode: await _at_once(url, 500) for mode, (_, url) in servers.items()}
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
    print("\nemulator request validation through the SDK (the request above; TTFT 0: request sent -> first delta)")
    print(f"  {'streams':<14} {'mode':<7} {'p50 ms':>8} {'p95 ms':>8} {'wall/request ms':>16}")
    for mode, timings in one.items():
        print(f"  {'one at a time':<14} {mode:<7} {percentile(timings, 0.5):>8.3f} {percentile(timings, 0.95):>8.3f} {'':>16}")
    for mode, (timings, wall) in together.items():
        print(f"  {'500 at once':<14} {mode:<7} {percentile(timings, 0.5):>8.1f} {percentile(timings, 0.95):>8.1f} {wall * 1000 / 500:>16.3f}")
    added_one = percentile(one["strict"], 0.5) - percentile(one["loose"], 0.5)
    added_many = (together["strict"][1] - together["loose"][1]) * 1000 / 500
    print("  at once, p50 and p95 are a stream's wait behind the others; what validation adds per request is the\n"
          "  difference of wall time per request")
    print(f"  {target('strict adds, SDK-measured p50, one at a time', added_one, '<=', ADDED_TARGET_MS, ' ms')}")
    print(f"  {target('strict adds, wall per request, 500 at once', added_many, '<=', ADDED_TARGET_MS, ' ms')}")


def _sdk_request(i: int) -> dict[str, Any]:
    body, _ = realistic_request()
    return {**{k: v for k, v in body.items() if k != "stream"}, "metadata": {"user_id": f"bench-{i}"}}


async def _first_delta_ms(client: Any, request: dict[str, Any]) -> float:
    import time

    started = time.perf_counter()
    stream = await client.messages.create(**request, stream=True)
    async with stream:
        async for event in stream:
            if event.type == "content_block_delta":
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("the stream ended without a content delta")


async def _one_at_a_time(urls: dict[str, str], count: int) -> dict[str, list[float]]:
    import anthropic

    clients = {mode: anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0, timeout=60) for mode, url in urls.items()}
    timings: dict[str, list[float]] = {mode: [] for mode in urls}
    try:
        for i in range(count + 10):  # the first ten warm each server and connection up: not counted
            for mode in (urls if i % 2 else reversed(urls)):  # alternating who goes first
                measured = await _first_delta_ms(clients[mode], _sdk_request(i))
                if i >= 10:
                    timings[mode].append(measured)
    finally:
        for client in clients.values():
            await client.close()
    return timings


async def _at_once(url: str, count: int) -> tuple[list[float], float]:
    import asyncio
    import time

    import anthropic

    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0, timeout=120)
    requests = [_sdk_request(i) for i in range(count)]
    try:
        await _first_delta_ms(client, requests[0])  # warm
        started = time.perf_counter()
        timings = await asyncio.gather(*(_first_delta_ms(client, r) for r in requests))
        return list(timings), time.perf_counter() - started
    finally:
        await client.close()
