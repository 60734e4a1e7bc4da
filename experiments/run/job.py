"""One Hydra job: build the parts from the config, run the suite, write results.duckdb, print a summary."""
from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import shutil
import socket
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.results import invariants
from experiments.results import tables as results
from experiments.run.config_check import GROUPS, ConfigError, check_config
from experiments.results.leaks import leak_violations
from experiments.run.load import LoadMeter, load_line, startup_frozen
from experiments.run.parts import PARTS, RECORDED, build, build_parts, recorded_choices, start_parts
from experiments.paths import CONFIG_DIR, PROJECT_ROOT
from experiments.run.runner import SessionRecord, run_suite, run_to_cleanup
from experiments.results.summary import summary_table
from experiments.sessions.transcript import printable
from stores import archive
from stores.postgres import redact_dsn

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
        from experiments.faults.findings import FAULTS_TABLE, RECOVERY_TABLE, fault_rows

        archive.write_table(saved.path, "faults", FAULTS_TABLE, fault_rows(recovery, saved.run_id))
        archive.write_table(saved.path, "recovery", RECOVERY_TABLE, [{**recovery.table_row(), "run_id": saved.run_id}])
    chosen = " ".join([*(f"{group}={choices.get(group, '?')}" for group in RECORDED), f"faults={faults}"])
    print_run(saved, f"harnesslab run · {chosen}", recovery.summary() if recovery else None)
    return saved.path


def quiet_http_logs() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class SavedRun:
    path: Path  # its results.duckdb
    run_id: str
    tables: dict[str, list[dict[str, Any]]]
    violations: list[invariants.Violation]


def save_run(
    cfg: DictConfig, output_dir: Path, choices: dict[str, str], started: dt.datetime,
    records: list[SessionRecord], logs: dict[str, list], faults: str = "none", violations: list = (),
    meter: LoadMeter | None = None,
) -> SavedRun:
    """Write the run's results.duckdb: its sessions, model and tool calls, events, run row and invariant checks."""
    run = {
        "started": started, "finished": utc_now(),
        "config": redact_dsn(json_text(OmegaConf.to_container(cfg, resolve=True))), "choices": json_text(choices),
        "git_sha": git_sha(), "host": socket.gethostname(), "python": platform.python_version(),
        "harnesslab": _version(),
    }
    tables = tables_for(records, logs, {**{part: choices.get(part, "") for part in PARTS}, "faults": faults})
    found = invariants.check_logs(logs) + list(violations)
    tables["runs"], tables["violations"] = [run], invariants.violation_rows(found)
    if meter is not None:
        tables["load"] = [meter.row(tables, cfg.run.concurrency, cfg.run.get("arrivals_per_s"))]
    path = output_dir / cfg.run.results
    run_id = uuid.uuid4().hex
    results.write_results(path, run_id, tables)
    return SavedRun(path, run_id, tables, found)


def print_run(saved: SavedRun, heading: str, extra: str | None = None) -> None:
    sessions = pd.DataFrame(saved.tables["sessions"], columns=list(results.SCHEMA["sessions"]))
    calls = pd.DataFrame(saved.tables["model_calls"], columns=list(results.SCHEMA["model_calls"]))
    print(heading)
    print(summary_table(sessions, calls))
    if saved.tables.get("load"):
        print(load_line(saved.tables["load"][0], calls["overhead_ms"]))
    if extra:
        print(extra)
    print(f"invariants: {len(saved.violations)} violation(s) in {len(saved.tables['sessions'])} session log(s)")
    for violation in saved.violations[:20]:
        print(f"  {printable(str(violation))}")
    print(f"results: {saved.path}")


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
        meter.model_server_rss_mb, meter.model_server_cpu_s = getattr(parts.model, "server_usage", lambda: (None, None))()
        logs = {r.session_id: await parts.store.events(r.session_id) for r in records}
        leaks = []
        if parts.credentials is not None and parts.credentials.proxy_url is not None:
            leaks = leak_violations(logs, parts.credentials.planted)
            if output_dir is not None:
                shutil.copy(parts.credentials.audit, output_dir / "proxy-audit.jsonl")
    return records, logs, leaks


def tables_for(records: list[SessionRecord], logs: dict[str, list], parts: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {"sessions": [], "model_calls": [], "tool_calls": [], "events": []}
    for r in records:
        events = logs[r.session_id]
        calls = results.model_call_rows(r.session_id, events)
        tools = results.tool_call_rows(r.session_id, events)
        tables["model_calls"] += calls
        tables["tool_calls"] += tools
        tables["events"] += archive.event_rows(r.session_id, events)
        tables["sessions"].append({
            "session_id": r.session_id, "suite": r.suite, "task": r.task, "instance": r.instance, **parts,
            "status": r.outcome.status, "reason": r.outcome.reason, "success": r.verdict.success,
            "check_detail": r.verdict.detail, **results.session_totals(calls, tools),
            "duration_ms": r.duration_ms, "events": len(events),
        })
    return tables


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def json_text(value: Any) -> str:
    return json.dumps(value, default=str)


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("harnesslab")
    except PackageNotFoundError:
        return "unknown"


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
