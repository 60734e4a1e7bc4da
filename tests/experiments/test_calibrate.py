"""`harnesslab calibrate`, checked offline against an emulator whose latency profile is known."""
from __future__ import annotations

import pytest

from experiments import calibrate
from experiments.tasks import policy_book
from harnesses.emulator.service import LatencyProfile
from harnesses.models.emulator import EmulatorModel
from tests.experiments.test_cli import harnesslab

KNOWN = {"base_ttft_ms": 30.0, "prefill_ms_per_1k_tokens": 10.0, "output_tokens_per_s": 300.0, "jitter_sigma": 0.05}


async def test_fitting_recovers_a_known_profile():
    model = EmulatorModel(policy_book(), latency=KNOWN)
    try:
        samples = await calibrate.measure(model, [200, 2000, 6000], repeats=4)
    finally:
        await model.close()
    profile = calibrate.fit(samples)
    assert profile.base_ttft_ms == pytest.approx(30, abs=5)
    assert profile.prefill_ms_per_1k_tokens == pytest.approx(10, abs=2)
    assert profile.jitter_sigma < 0.15
    assert profile.output_tokens_per_s == pytest.approx(300, rel=0.5)


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
