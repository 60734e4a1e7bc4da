"""A config value that makes no sense is refused where it enters, before any part is built: one line naming
the key, the value and what is valid; no traceback; nothing written."""
from __future__ import annotations

import copy
import functools

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.run.config_check import RULES, ConfigError, check_config
from experiments.run.job import compose_config, run_job
from experiments.paths import CONFIG_DIR, PROJECT_ROOT
from experiments.results.tables import read_table
from tests.experiments.cli.test_cli import harnesslab

QUICK = ["model=scripted", "store=memory", "tasks.only=[greeting]"]


def refused(done, expected: str) -> None:
    assert done.returncode != 0, done.stdout
    assert f"harnesslab: {expected}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr, done.stderr


@pytest.mark.parametrize("overrides, expected", [
    (["sandbox.timeout_s=-5"], "sandbox.timeout_s=-5: expected a number > 0"),
    (["run.concurrency=abc"], "run.concurrency='abc': expected a whole number >= 1"),
    (["run.concurrency=0"], "run.concurrency=0: expected a whole number >= 1"),
    (["sandbox=pool", "sandbox.inner.output_limit=0"], "sandbox.inner.output_limit=0: expected a whole number >= 1"),
    (["context=window", "context.turns=1.5"], "context.turns=1.5: expected a whole number >= 1"),
    (["harness.interrupted=sometimes"], "harness.interrupted='sometimes': expected one of idempotent, error, rerun"),
    (["tasks.question_share=2"], "tasks.question_share=2: expected a number >= 0 and <= 1"),
    (["model=anthropic"], "model.api_key_env='ANTHROPIC_API_KEY' ($ANTHROPIC_API_KEY is not set: export it, "
                          "or use model=emulator)"),
    (["model=emulator", "model.latency_file=profiles/latency.yaml"], "model.latency_file='profiles/latency.yaml' "
                                                                     "(no file at {cwd}/profiles/latency.yaml)"),
    (["context._target_=tests.experiments.run.custom_parts.PickyContext", "+context.keep=0"],
     "context (tests.experiments.run.custom_parts.PickyContext) cannot be built: keep must be at least 1, got 0"),
    (["context._target_=tests.experiments.run.custom_parts.PickyContext", "+context.nope=1"],
     "context (tests.experiments.run.custom_parts.PickyContext) cannot be built: TypeError: "),
    (["model=emulator", "model.thinking={type:enabled,budget_tokens:8000}"], "model.thinking.budget_tokens=8000 is not below "
                                                           "harness.max_tokens=4096; valid: a budget below harness.max_tokens"),
    (["model=emulator", "model.client=azure"], "model.client='azure': expected one of anthropic, bedrock, vertex, foundry"),
    (["faults=harness_kill", "store=memory"], "store stores.memory.MemoryStore cannot be shared between processes, which worker processes (run.workers, faults=) need: use store=sqlite or store=postgres"),
])
def test_a_bad_value_for_run_is_one_line_naming_it_and_nothing_runs(tmp_path, monkeypatch, overrides, expected):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    done = harnesslab("run", *QUICK, *overrides, cwd=tmp_path, env={"PYTHONPATH": str(PROJECT_ROOT)})
    refused(done, expected.format(cwd=tmp_path))
    assert not list(tmp_path.glob("outputs/**/results.duckdb"))


def test_submit_worker_and_collect_refuse_bad_values_the_same_way(tmp_path):
    store = f"store.path={tmp_path / 'lab.sqlite'}"
    refused(harnesslab("submit", store, "tasks.repeat=0", cwd=tmp_path), "tasks.repeat=0: expected a whole number >= 1")
    refused(harnesslab("submit", store, "store=nope", cwd=tmp_path), "In 'config': Could not find 'store/nope'")
    assert not (tmp_path / "lab.sqlite").exists()
    refused(harnesslab("worker", store, "run.concurrency=abc", cwd=tmp_path), "run.concurrency='abc': expected a whole number")
    refused(harnesslab("collect", store, "sandbox.timeout_s=0", cwd=tmp_path), "sandbox.timeout_s=0: expected a number > 0")


def test_replay_refuses_bad_values_the_same_way(tmp_path):
    results = run_job(compose_config(["model=scripted", "store=memory", "tasks.only=[arithmetic]"]), tmp_path / "run", {})
    session = read_table([results], "sessions")["session_id"][0]
    done = harnesslab("replay", session, "--from", str(results), "sandbox.output_limit=-1", cwd=tmp_path)
    refused(done, "sandbox.output_limit=-1: expected a whole number >= 1")


def shipped_options() -> list[tuple[str, str]]:
    return [(group, path.stem) for group in ("harness", "model", "sandbox", "store", "context", "tasks", "credentials")
            for path in sorted((CONFIG_DIR / group).glob("*.yaml"))]


@functools.cache
def composed(group: str, option: str):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[f"{group}={option}"])


@pytest.mark.parametrize("group, option", shipped_options())
def test_every_shipped_option_passes_the_checks(group, option, monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "any")
    cfg = copy.deepcopy(composed(group, option))
    if cfg.model.get("api_key_env"):  # a cloud profile reads its own variable
        monkeypatch.setenv(cfg.model.api_key_env, "any")
    if "path" in cfg.store:  # under ${hydra:runtime.output_dir} otherwise, which only a real run has
        OmegaConf.update(cfg, "store.path", str(tmp_path / "sessions.db"))
    check_config(cfg)


def test_every_rule_names_a_key_a_shipped_config_has():
    keys = set()
    for group, option in shipped_options():
        keys |= set(_flat(OmegaConf.to_container(composed(group, option), resolve=False)))
    assert sorted(set(RULES) - {k.replace(".inner.", ".") for k in keys}) == []


def _flat(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_a_config_error_is_a_value_error_naming_key_value_and_what_is_valid(tmp_path):
    cfg = compose_config(["store=memory"])
    OmegaConf.update(cfg, "run.arrivals_per_s", -1)
    with pytest.raises(ConfigError, match=r"^run.arrivals_per_s=-1: expected a number > 0, or null$"):
        check_config(cfg)
