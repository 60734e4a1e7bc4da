"""Emulator benchmarks: how closely streams meet their configured TTFT, and 500 concurrent streams.

The emulator runs as its own process (`harnesslab emulator`), as it would beside a real experiment;
the official SDK drives it from this process. Overhead = TTFT the SDK measured (request sent -> first
content delta) minus the TTFT the emulator chose for that request (its x-emulator-ttft-ms header).
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.bench.targets import target
from experiments.stats import percentile
from harnesses.emulator.service import LatencyProfile
from stores.postgres_server import free_loopback_port

PROMPT = "Create a file named hello.txt containing exactly one line: hello, harnesslab"


async def streams(url: str, count: int, concurrent: bool) -> tuple[list[float], list[str], float, int]:
    """(overheads in ms, errors, wall seconds, peak streams open at once) for `count` streaming requests.

    One at a time, a stream is closed at its first delta (only TTFT is measured); at once, each is read
    to its end, so they overlap."""
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0, timeout=120)
    overheads: list[float] = []
    errors: list[str] = []
    open_now = peak = 0

    async def one(i: int) -> None:
        nonlocal open_now, peak
        messages = [{"role": "user", "content": PROMPT}]
        try:
            started = time.perf_counter()
            stream = await client.messages.create(model="claude-emulated", max_tokens=64, messages=messages, stream=True, metadata={"user_id": str(i)})
            open_now += 1
            peak = max(peak, open_now)
            first = None
            async with stream:
                async for event in stream:
                    if event.type == "content_block_delta" and first is None:
                        first = time.perf_counter()
                        if not concurrent:
                            break
            open_now -= 1
            overheads.append((first - started) * 1000 - float(stream.response.headers["x-emulator-ttft-ms"]))
        except Exception as exc:  # counted, not raised: the benchmark reports errors
            errors.append(f"{type(exc).__name__}: {exc}"[:120])

    started = time.perf_counter()
    if concurrent:
        await asyncio.gather(*(one(i) for i in range(count)))
    else:
        for i in range(count):
            await one(i)
    wall = time.perf_counter() - started
    await client.close()
    return overheads, errors, wall, peak


def stats(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/emulator/stats", timeout=10) as response:
        return json.load(response)


def serve(folder: Path, name: str, profile: LatencyProfile, *flags: str) -> tuple[subprocess.Popen, str]:
    """`harnesslab emulator` in its own process with this latency profile (and `flags`); returns it and its URL."""
    path = folder / f"{name}.yaml"
    profile.save(path)
    port = free_loopback_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "emulator", "--port", str(port), "--latency", str(path), *flags],
        stdout=subprocess.PIPE, text=True,
    )
    server.stdout.readline()  # listening
    return server, f"http://127.0.0.1:{port}"


async def main(quick: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="harnesslab-bench-emulator-"))
    runs = [
        ("floor", LatencyProfile(base_ttft_ms=0, prefill_ms_per_1k_tokens=0, jitter_sigma=0), 30 if quick else 200, False),
        ("one at a time", LatencyProfile(base_ttft_ms=50, jitter_sigma=0.3), 30 if quick else 200, False),
        ("500 at once", LatencyProfile(base_ttft_ms=300, jitter_sigma=0.3, output_tokens_per_s=100), 500, True),
    ]
    print("\nemulator fidelity (its own process; SDK-measured TTFT minus the TTFT it chose for the request)")
    print(f"  {'streams':<14} {'configured p50':>15} {'overhead p50':>13} {'p95':>8} {'server late p50':>16} {'p95':>7} "
          f"{'errors':>7} {'peak open':>10} {'wall s':>7}")
    measured = {}
    for label, profile, count, concurrent in runs:
        server, url = serve(folder, label.replace(" ", "_"), profile)
        try:
            overheads, errors, wall, peak = await streams(url, count, concurrent)
            lateness = stats(url)["lateness_ms"]
        finally:
            server.terminate()
            server.wait(10)
        p50, p95 = (percentile(overheads, q) if overheads else float("nan") for q in (0.5, 0.95))
        measured[label] = p50, len(errors), peak
        late50, late95 = lateness["p50"] or 0.0, lateness["p95"] or 0.0
        print(f"  {label:<14} {profile.base_ttft_ms:>12.0f} ms {p50:>10.2f} ms {p95:>5.1f} ms {late50:>13.3f} ms {late95:>7.3f} "
              f"{len(errors):>7} {peak:>10} {wall:>7.2f}")
        for error in errors[:3]:
            print(f"    {error}")
    print("  overhead: what the SDK measured beyond the chosen TTFT; floor: with TTFT 0, i.e. what the SDK, HTTP\n"
          "  and the server's parsing cost on any request. server late: the emulator's own timing error, first delta\n"
          "  sent vs its deadline. At once, the overhead is this one process building 500 SDK requests together.")
    (one_p50, _, _), (_, errors, peak) = measured["one at a time"], measured["500 at once"]
    print(f"  {target('overhead p50, one at a time', one_p50, '<=', 2, ' ms')}")
    print(f"  {target('errors, 500 at once', errors, '=', 0)}")
    print(f"  {target('streams open together, 500 at once', peak, '=', 500)}")
