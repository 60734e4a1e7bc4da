"""`harnesslab report PATH ...`: one report over every results file under the paths.

It starts with what the runs are and vary (experiments/report/sweeps.py) and, per cell, sessions passed and work
done; then each section that is about these runs, and only those: coupled vs decoupled TTFT against the
seed (ttft.py), recovery under workers and faults (recovery.py), context strategies
(context.py), the red team (security.py), several hands (hands.py), runs of 100
sessions or more (load.py). Plots go to PATH/report for one path, to a new folder for several.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from experiments.report.context import context_section
from experiments.report.hands import hands_section
from experiments.report.load import load_section
from experiments.report.recovery import recovery_section
from experiments.report.security import security_section
from experiments.report.ttft import ttft_section
from experiments.results.tables import read_table
from experiments.report.sweeps import described, run_cells, varying

NO_SECTION = (
    "  no section of the report is about these runs: TTFT needs harness=coupled and decoupled without faults or "
    "workers; recovery, runs with workers; context, several context strategies; security, the red-team suites; "
    "hands, runs of several hands; load, runs of >= 100 sessions"
)


def results_files(*paths: Path) -> list[Path]:
    """Every results.duckdb at or under `paths` (results files, or folders of them: runs, sweeps, several sweeps)."""
    files = []
    for path in paths:
        found = [path] if path.is_file() else sorted(path.rglob("results.duckdb"))
        if not found:
            raise FileNotFoundError(f"no results.duckdb at or under {path}")
        files += found
    return files


def report_folder(paths: list[Path]) -> Path:
    """Where the plots go unless the user says: beside one path; a new folder for several (never one of theirs)."""
    if len(paths) == 1:
        return (paths[0] if paths[0].is_dir() else paths[0].parent) / "report"
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    folder, taken = Path("reports") / stamp, 1
    while folder.exists():
        taken += 1
        folder = Path("reports") / f"{stamp}-{taken}"
    return folder


def overview(files: list[Path], runs: pd.DataFrame) -> list[str]:
    """What the runs are, and per cell of what they vary: sessions, how many passed their check, the work done."""
    sessions = read_table(files, "sessions")[["run_id", "success", "turns", "tool_calls"]].merge(runs, on="run_id")
    lines = [f"{len(files)} results file(s), {len(runs)} run(s), {len(sessions)} sessions; {described(runs)}"]
    if keys := varying(runs):
        grouped = sessions.groupby(keys)
        table = pd.DataFrame({
            "sessions": grouped.size(), "passed": grouped["success"].sum().astype(int),
            "model calls/session": grouped["turns"].mean(), "tool calls/session": grouped["tool_calls"].mean(),
        })
        lines.append(table.round(1).reset_index().to_string(index=False))
    return lines


def report(paths: Path | list[Path], out: Path | None = None) -> str:
    """The report over every results file under `paths`; plots go to `out` (default: report_folder)."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    files = results_files(*paths)
    runs = run_cells(files)
    if runs["harness"].isna().all():
        raise ValueError(f"no sessions in {len(files)} results file(s) under {', '.join(map(str, paths))}")
    chosen = out is not None
    out = out or report_folder(paths)
    sections = ttft_section(files, runs, out) + recovery_section(files, out) + context_section(files, out)
    sections += security_section(files) + hands_section(files) + load_section(files)
    lines = overview(files, runs) + (sections or ["", NO_SECTION])
    if not chosen and len(paths) > 1 and out.exists():
        lines.append(f"this report's folder: {out} (new, as the report covers {len(paths)} paths; --out chooses another)")
    return "\n".join(lines)
