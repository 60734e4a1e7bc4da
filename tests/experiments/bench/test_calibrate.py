"""`harnesslab calibrate`, checked offline against an emulator whose latency profile is known."""
from __future__ import annotations

import statistics

import pytest

from experiments.bench import calibrate
from experiments.tasks import policy_book
from harnesses.emulator.service import LatencyProfile
from harnesses.models.emulator import EmulatorModel
from tests.experiments.cli.test_cli import harnesslab

KNOWN = {"base_ttft_ms": 30.0, "prefill_ms_per_1k_tokens": 10.0, "output_tokens_per_s": 300.0, "jitter_sigma": 0.05}


def test_fitting_recovers_a_known_profile_exactly():
    truth = LatencyProfile(base_ttft_ms=30, prefill_ms_per_1k_tokens=10, output_tokens_per_s=300, jitter_sigma=0.1, seed=4)
    samples = []
    for i, tokens in enumerate([200, 2000, 6000] * 40):
        ttft = truth.ttft_ms(tokens, 0, truth.rng_for({"i": i}))
        samples.append(calibrate.Sample(tokens, 61, ttft, ttft + 60 / 300 * 1000))
    profile = calibrate.fit(samples)
    assert profile.base_ttft_ms == pytest.approx(30 * 1.005, rel=0.1)  # lognormal(0, 0.1) has mean 1.005
    assert profile.prefill_ms_per_1k_tokens == pytest.approx(10 * 1.005, rel=0.1)
    assert profile.jitter_sigma == pytest.approx(0.1, abs=0.02)
    assert profile.output_tokens_per_s == pytest.approx(300)


async def test_measuring_the_emulator_sees_prefill_grow_with_the_prompt():
    # 50 ms per 1k tokens: ~290 ms more prefill for the large prompts, far above what a loaded machine's scheduling adds
    model = EmulatorModel(policy_book(), latency={**KNOWN, "prefill_ms_per_1k_tokens": 50.0})
    try:
        samples = await calibrate.measure(model, [200, 6000], repeats=3)
    finally:
        await model.close()
    small, large = samples[:3], samples[3:]
    assert all(s.input_tokens < 400 for s in small) and all(s.input_tokens > 5000 for s in large)
    assert all(s.output_tokens > 1 and s.latency_ms >= s.ttft_ms > 0 for s in samples)
    assert statistics.median(s.ttft_ms for s in large) > statistics.median(s.ttft_ms for s in small) + 150


@pytest.mark.slow
def test_the_cli_writes_a_profile_a_run_can_use(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    done = harnesslab("calibrate", "--out", "profile.yaml", "--sizes", "100,1000", "--repeats", "2", cwd=tmp_path)
    assert done.returncode == 0 and "a self-check" in done.stdout and "wrote profile.yaml" in done.stdout, done.stderr
    profile = LatencyProfile.load(tmp_path / "profile.yaml")
    assert profile.base_ttft_ms > 0 and profile.output_tokens_per_s > 0
    used = harnesslab("run", f"model.latency_file={tmp_path / 'profile.yaml'}", "tasks.only=[arithmetic]", cwd=tmp_path)
    assert used.returncode == 0 and "1/1 sessions succeeded" in used.stdout, used.stderr
    bad = harnesslab("calibrate", "--sizes", "big", cwd=tmp_path)
    assert bad.returncode == 2 and "expected whole numbers" in bad.stderr
