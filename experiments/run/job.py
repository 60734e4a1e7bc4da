"""One Hydra job: build the parts from the config, run the suite, write results.duckdb, print a summary."""
from __future__ import annotations

import logging
import shutil
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.paths import CONFIG_DIR
from experiments.results.leaks import leak_violations
from experiments.results.save import print_run, save_run, utc_now
from experiments.results.schema import FAULTS_TABLE, RECOVERY_TABLE
from experiments.run.config_check import GROUPS, ConfigError, check_config
from experiments.run.load import LoadMeter, startup_frozen
from experiments.run.parts import RECORDED, build, build_parts, recorded_choices, start_parts
from experiments.run.runner import SessionRecord, run_suite, run_to_cleanup
from stores import archive

# HTTP client libraries log every request at INFO, which Hydra's job logging would print
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "anthropic", "aiohttp.access")


def run_job(cfg: DictConfig, output_dir: Path, choices: dict[str, str]) -> Path:
    """Run the configured experiment; return the path of its results.duckdb."""
    quiet_http_logs()
    choices = recorded_choices(cfg, choices)
    started = utc_now()
    faults = "+".join(cfg.get("faults") or {}) or "none"
    cell = " ".join(f"{group}={choices[group]}" for group in ("harness", "sandbox") if group in choices)
    cell += f" faults={faults}" if faults != "none" else ""
    recovery, meter = None, None
    if cfg.get("faults") or cfg.run.get("workers"):
        from experiments.faults.runner import run_with_faults

        if cfg.get("credentials"):
            raise ConfigError("credentials=proxy grants capabilities in the run's own process: not with faults or workers yet")
        records, logs, recovery = run_to_cleanup(run_with_faults(cfg, output_dir, cell))
        leaks = []
    else:
        meter = LoadMeter()  # a run with workers spends its CPU in their processes, not this one
        records, logs, leaks = run_to_cleanup(_run(cfg, cell, output_dir, meter))
    found = leaks + (recovery.violations() if recovery else [])
    saved = save_run(cfg, output_dir, choices, started, records, logs, faults, found, meter)
    if recovery is not None:
        from experiments.faults.findings import fault_rows

        archive.write_table(saved.path, "faults", FAULTS_TABLE, fault_rows(recovery, saved.run_id))
        archive.write_table(saved.path, "recovery", RECOVERY_TABLE, [{**recovery.table_row(), "run_id": saved.run_id}])
    chosen = " ".join([*(f"{group}={choices.get(group, '?')}" for group in RECORDED), f"faults={faults}"])
    if cfg.model.get("strict") is False:  # the emulator answers what the real API would refuse: say so
        chosen += " (emulator validation loose: model.strict=false)"
    if (cfg.model.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        chosen += f" thinking={cfg.model.thinking.type}" + (f":{cfg.model.thinking.budget_tokens}" if cfg.model.thinking.get("budget_tokens") else "")
    print_run(saved, f"harnesslab run · {chosen}", recovery.summary() if recovery else None)
    return saved.path


def quiet_http_logs() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


async def _run(cfg: DictConfig, cell: str = "", output_dir: Path | None = None, meter: LoadMeter | None = None,
               ) -> tuple[list[SessionRecord], dict[str, list], list]:
    """The sessions' records and logs, and any planted secret found in the logs (the proxy's audit log, if
    there is one, is kept in `output_dir`)."""
    tasks = build(cfg, "tasks")
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack)
        await start_parts(parts)
        done = 0

        def progress(record: SessionRecord) -> None:
            nonlocal done
            done += 1
            mark = "ok" if record.verdict.success else "FAILED"
            print(f"[{cell}] {done}/{len(tasks)} {record.task}#{record.instance} {mark}", file=sys.stderr, flush=True)

        meter = meter or LoadMeter()
        meter.start()
        with startup_frozen():
            records = await run_suite(parts.store, parts.harness, parts.sandboxes, tasks, cfg.run.concurrency, progress,
                                      parts.credentials, cfg.run.get("arrivals_per_s"), cfg.run.get("seed", 0), meter)
        meter.stop()
        meter.model_server_rss_mb, meter.model_server_cpu_s = parts.model.server_usage()
        logs = {r.session_id: await parts.store.events(r.session_id) for r in records}
        leaks = []
        if parts.credentials is not None and parts.credentials.proxy_url is not None:
            leaks = leak_violations(logs, parts.credentials.planted)
            if output_dir is not None:
                shutil.copy(parts.credentials.audit, output_dir / "proxy-audit.jsonl")
    return records, logs, leaks


def compose_config(overrides: list[str], groups: tuple[str, ...] = GROUPS) -> DictConfig:
    """The run configuration for commands that are not Hydra jobs (no output folder of their own), its
    `groups` (those the command builds) checked: a ConfigError says what is wrong."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:  # a wrong option or a malformed override
        raise ConfigError(str(exc)) from None
    try:
        OmegaConf.to_container(cfg.store, resolve=True)
    except InterpolationResolutionError:
        raise ConfigError("workers share a store: give it a place, e.g. store.path=/tmp/lab.sqlite "
                          "(or HARNESSLAB_SQLITE_PATH), or store=postgres") from None
    check_config(cfg, groups)
    return cfg
