"""`harnesslab calibrate`: measure a Messages API endpoint and write an emulator latency profile.

Against the real API when ANTHROPIC_API_KEY is set; otherwise against the emulator itself, which
checks the fitting on a service whose profile is known. Prompts of a few sizes, each made unique so
no prompt cache serves it; TTFT is fitted as base + slope x input tokens (least squares), the jitter
as the spread of log(TTFT / fit), and the output speed from the time after the first token.
"""
from __future__ import annotations

import math
import statistics
import uuid
from dataclasses import dataclass

from harnesses.base import ModelRequest
from harnesses.emulator.service import LatencyProfile

FILLER = "The quick brown fox jumps over the lazy dog. "  # ~11 tokens, 45 characters


@dataclass(frozen=True, slots=True)
class Sample:
    input_tokens: int
    output_tokens: int
    ttft_ms: float
    latency_ms: float


async def measure(model, sizes: list[int], repeats: int) -> list[Sample]:
    samples = []
    for size in sizes:
        for _ in range(repeats):
            text = f"[{uuid.uuid4().hex}] " + FILLER * max(1, size * 4 // len(FILLER)) + "\nCount from 1 to 40, separated by spaces."
            response = await model.respond(ModelRequest("", [{"role": "user", "content": text}], max_tokens=200))
            usage = response.usage
            samples.append(Sample(
                usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens,
                usage.output_tokens, response.ttft_ms, response.latency_ms,
            ))
    return samples


def fit(samples: list[Sample], seed: int = 0) -> LatencyProfile:
    xs, ys = [s.input_tokens / 1000 for s in samples], [s.ttft_ms for s in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0
    base = max(0.0, mean_y - slope * mean_x)
    residuals = [math.log(y / (base + slope * x)) for x, y in zip(xs, ys) if base + slope * x > 0 and y > 0]
    speeds = [(s.output_tokens - 1) / ((s.latency_ms - s.ttft_ms) / 1000) for s in samples
              if s.output_tokens > 1 and s.latency_ms > s.ttft_ms]
    return LatencyProfile(
        base_ttft_ms=round(base, 2),
        prefill_ms_per_1k_tokens=round(max(0.0, slope), 3),
        cached_prefill_ms_per_1k_tokens=round(max(0.0, slope) / 10, 3),  # not measured: the API's cache is ~10x cheaper
        output_tokens_per_s=round(statistics.median(speeds), 1) if speeds else LatencyProfile.output_tokens_per_s,
        jitter_sigma=round(statistics.pstdev(residuals), 3) if len(residuals) > 1 else 0.0,
        seed=seed,
    )


def summary(samples: list[Sample], profile: LatencyProfile, target: str) -> str:
    sizes = sorted({s.input_tokens for s in samples})
    return (
        f"calibrated against {target}: {len(samples)} calls, input {sizes[0]}..{sizes[-1]} tokens\n"
        f"TTFT = {profile.base_ttft_ms} ms + {profile.prefill_ms_per_1k_tokens} ms per 1k input tokens, "
        f"lognormal jitter sigma {profile.jitter_sigma}; output {profile.output_tokens_per_s} tokens/s"
    )
