"""Every option of every config group composes and builds; bad options fail with the valid ones."""
from __future__ import annotations

import itertools
import os
from contextlib import AsyncExitStack

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.cli.main import CONFIG_DIR
from experiments.run.job import build_parts, start_parts
from experiments.run.runner import run_task
from harnesses.base import ContextStrategy, Harness, Model
from sandboxes.base import SandboxProvider
from stores.base import SessionStore
from harnesses.emulator.providers import EMULATED_PROFILES, base_url
from tests.experiments.run.custom_parts import CountingContext
from tests.experiments.cli.test_cli import harnesslab

GROUPS = ["harness", "model", "sandbox", "store", "context", "credentials", "tasks", "experiment"]
NEEDS_CREDENTIALS = {"credentials", "security"}  # task suites whose tasks need credentials=proxy
POOLS = {"pool": "local", "docker_pool": "docker"}  # a pool config -> the provider config it composes as its inner one


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def composed(overrides: list[str], tmp_path, request=None, emulator=None, recording=None):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    if "path" in cfg.store:  # normally under ${hydra:runtime.output_dir}, which only a real run has
        OmegaConf.update(cfg, "store.path", str(tmp_path / "sessions.db"))
    if "dsn" in cfg.store:
        OmegaConf.update(cfg, "store.dsn", request.getfixturevalue("postgres_dsn"))
    if "latency" in cfg.model:  # composing and building is the point, not a paced model (scale waits 8 s per call)
        OmegaConf.update(cfg, "model.latency.base_ttft_ms", min(cfg.model.latency.base_ttft_ms, 40))
        OmegaConf.update(cfg, "model.latency.output_tokens_per_s", max(cfg.model.latency.output_tokens_per_s, 400))
    if "recording" in cfg.model:
        OmegaConf.update(cfg, "model.recording.spec", str(recording))
    if "api_key_env" in cfg.model and not os.environ.get(cfg.model.api_key_env):  # no real key: an emulator
        client = cfg.model.get("client", "anthropic")
        OmegaConf.update(cfg, "model.base_url", base_url(client, emulator.url))
        if client != "anthropic":  # the cloud's route on the emulator, a model it knows, the settings it takes
            OmegaConf.update(cfg, "model.model", "claude-emulated")
            OmegaConf.update(cfg, "model.profile", EMULATED_PROFILES.get(client, {}), merge=False)
        request.getfixturevalue("monkeypatch").setenv(cfg.model.api_key_env, "test-key")
    return cfg


def test_every_group_has_options():
    assert all(options(g) for g in GROUPS), {g: options(g) for g in GROUPS}


def engine_marks(option: str) -> list:
    return [pytest.mark.postgres] if option == "postgres" else [pytest.mark.docker] if "docker" in option else []


@pytest.mark.parametrize(
    "group, option", [pytest.param(g, o, marks=engine_marks(o)) for g in GROUPS for o in options(g)],
)
async def test_every_option_composes_and_builds(group, option, tmp_path, request, emulator):
    if "docker" in option:
        request.getfixturevalue("docker_image")  # skips, or fails under REQUIRE_DOCKER=1, without an engine
    recorded = None
    if (group, option) == ("model", "replay"):
        from tests.harnesses.test_replay import recording

        recorded, _, _ = await recording(tmp_path)
    overrides = [f"{group}={option}"] + (["credentials=proxy"] if group == "tasks" and option in NEEDS_CREDENTIALS else [])
    cfg = composed(overrides, tmp_path, request, emulator, recorded)
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack)
        await start_parts(parts)
        assert isinstance(parts.store, SessionStore)
        assert isinstance(parts.sandboxes, SandboxProvider)
        assert isinstance(parts.model, Model)
        assert isinstance(parts.context, ContextStrategy)
        assert isinstance(parts.harness, Harness)
        tasks = instantiate(cfg.tasks)
        assert tasks, "the task suite is empty"
        record = await run_task(parts.store, parts.harness, parts.sandboxes, *tasks[0], credentials=parts.credentials)
        assert record.verdict.success, record.verdict.detail


@pytest.mark.parametrize("group", GROUPS[:-1])
def test_a_wrong_option_lists_the_valid_ones(group, tmp_path):
    with pytest.raises(MissingConfigException) as caught:
        composed([f"{group}=no_such_option"], tmp_path)
    message = str(caught.value)
    assert f"Could not find '{group}/no_such_option'" in message
    assert all(option in message for option in options(group))


async def test_a_users_own_class_plugs_in_with_one_override(tmp_path):
    cfg = composed(["context._target_=tests.experiments.run.custom_parts.CountingContext"], tmp_path)
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack)
        assert isinstance(parts.context, CountingContext)
        before = CountingContext.builds
        record = await run_task(parts.store, parts.harness, parts.sandboxes, *instantiate(cfg.tasks)[0])
        assert record.verdict.success and CountingContext.builds > before


def with_hydra(overrides: list[str]):
    """The composed config with its `hydra` node (mode, sweeper, the choices made), as `harnesslab run` sees it."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def sweep_cells(params) -> list[list[str]]:
    """Every job of a sweep, as Hydra's basic sweeper expands its params: one override per swept key."""
    parser = OverridesParser.create()
    axes = [[f"{key}={value}" for value in parser.parse_override(f"{key}={values}").sweep_string_iterator()]
            for key, values in params.items()]
    return [list(cell) for cell in itertools.product(*axes)]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_an_experiments_sweep_runs_without_m_and_each_of_its_jobs_composes(experiment):
    cfg = with_hydra([f"experiment={experiment}"])
    assert cfg.hydra.sweeper.params, f"experiment={experiment} sweeps nothing"
    assert cfg.hydra.mode == RunMode.MULTIRUN, f"experiment={experiment} sweeps, so it needs `hydra: mode: MULTIRUN`"
    cells = sweep_cells(cfg.hydra.sweeper.params)
    assert len(cells) > 1, cells
    for cell in cells:
        job = with_hydra([f"experiment={experiment}", *cell])
        for override in cell:
            key, value = override.split("=", 1)
            if key in job.hydra.runtime.choices:  # a config group: the option chosen
                assert job.hydra.runtime.choices[key] == value, (cell, key)
            else:  # a value: the one the job got
                assert OmegaConf.select(job, key) == OverridesParser.create().parse_override(override).value(), (cell, key)


def test_a_sweep_runs_without_m_into_the_folders_m_makes(tmp_path):
    done = harnesslab("run", "experiment=stores", "tasks.only=[greeting]", "tasks.repeat=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = tmp_path.glob("multirun/*/*")
    assert (sweep / "multirun.yaml").is_file() and not (tmp_path / "outputs").exists()
    assert sorted(p.relative_to(sweep).as_posix() for p in sweep.glob("*/results.duckdb")) == ["0/results.duckdb", "1/results.duckdb"]


@pytest.mark.parametrize("pool, provider", POOLS.items())
def test_a_pools_inner_provider_is_the_standalone_providers_config(pool, provider, tmp_path):
    pooled, alone = composed([f"sandbox={pool}"], tmp_path).sandbox, composed([f"sandbox={provider}"], tmp_path).sandbox
    assert OmegaConf.to_container(pooled.inner) == OmegaConf.to_container(alone)
    assert set(pooled) == {"_target_", "size", "inner"}, "a pool's own options only: the provider's are its inner config's"
    changed = composed([f"sandbox={pool}", "sandbox.inner.timeout_s=5"], tmp_path).sandbox
    assert changed.inner.timeout_s == 5 and changed.size == pooled.size
