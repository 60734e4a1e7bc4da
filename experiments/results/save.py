"""A run's results saved and printed: results.duckdb written from its records and logs (its sessions, model and
tool calls, events, run row and invariant checks), and the summary `harnesslab run`, `fork` and `collect` print."""
from __future__ import annotations

import datetime as dt
import json
import platform
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.paths import PROJECT_ROOT
from experiments.results import invariants
from experiments.results import tables as results
from experiments.results.schema import SCHEMA
from experiments.results.summary import summary_table
from experiments.run.load import LoadMeter, load_line
from experiments.run.parts import PARTS
from experiments.run.runner import SessionRecord
from experiments.sessions.transcript import printable
from stores import archive
from stores.postgres import redact_dsn


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
    sessions = pd.DataFrame(saved.tables["sessions"], columns=list(SCHEMA["sessions"]))
    calls = pd.DataFrame(saved.tables["model_calls"], columns=list(SCHEMA["model_calls"]))
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
