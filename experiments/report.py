"""`harnesslab report PATH`: TTFT per (sandbox, harness) cell from one or many results files.

It prints p50/p95/p99 of the first-turn TTFT with its breakdown, compares decoupled with coupled per
sandbox against the seed's headline (p50 -60 %, p95 -90 %), and writes two PNGs: TTFT CDFs and the
breakdown as stacked bars. Runs with workers and faults add a recovery section (report_recovery.py), runs that differ in
their context strategy a context section (report_context.py), red-team runs a security section (report_security.py),
runs with several hands a hands section (report_hands.py), runs of 100 sessions or more a load section
(report_load.py).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.figures import pyplot, save
from experiments.report_context import context_section
from experiments.report_hands import hands_section
from experiments.report_load import load_section
from experiments.report_recovery import recovery_section
from experiments.report_security import security_section
from experiments.results import read_table

SEED_CHANGE = {"p50": -0.60, "p95": -0.90}  # decoupled vs coupled, as the seed reports it
PARTS = ["queue_ms", "provision_ms", "context_ms", "model_ttft_ms", "other_ms"]
AGREES_WITHIN = 0.15  # of the seed's change, in fractions (15 percentage points)


def results_files(*paths: Path) -> list[Path]:
    """Every results.duckdb at or under `paths` (results files, or folders of them: runs, sweeps, several sweeps)."""
    files = []
    for path in paths:
        found = [path] if path.is_file() else sorted(path.rglob("results.duckdb"))
        if not found:
            raise FileNotFoundError(f"no results.duckdb at or under {path}")
        files += found
    return files


def first_turns(files: list[Path]) -> pd.DataFrame:
    """One row per user turn's first model call, with its cell and TTFT breakdown."""
    sessions = read_table(files, "sessions")[["run_id", "session_id", "harness", "sandbox", "task"]]
    calls = read_table(files, "model_calls")
    turns = calls[calls["turn_ttft_ms"].notna()].merge(sessions, on=["run_id", "session_id"])
    return turns.rename(columns={"ttft_ms": "model_ttft_ms"})


def cells(turns: pd.DataFrame) -> pd.DataFrame:
    grouped = turns.groupby(["sandbox", "harness"])
    table = grouped["turn_ttft_ms"].describe(percentiles=[0.5, 0.95, 0.99])[["count", "50%", "95%", "99%"]]
    table.columns = ["turns", "p50", "p95", "p99"]
    return table.join(grouped[PARTS].mean()).reset_index()


def comparison(table: pd.DataFrame) -> list[str]:
    lines = []
    for sandbox, rows in table.groupby("sandbox"):
        by = rows.set_index("harness")
        if not {"coupled", "decoupled"} <= set(by.index):
            continue
        coupled, decoupled = by.loc["coupled"], by.loc["decoupled"]
        changes = {q: decoupled[q] / coupled[q] - 1 for q in SEED_CHANGE}
        share = coupled["provision_ms"] / coupled["p50"] if coupled["p50"] else 0.0
        verdicts = [f"{q} {changes[q]:+.0%} (seed {SEED_CHANGE[q]:+.0%}: {_verdict(changes[q], SEED_CHANGE[q])})" for q in SEED_CHANGE]
        lines.append(
            f"  {sandbox}: decoupled vs coupled TTFT {', '.join(verdicts)}; provisioning is {share:.0%} of the coupled "
            f"p50 here ({coupled['provision_ms']:.0f} ms of {coupled['p50']:.0f} ms), so removing it can save at most that"
        )
    return lines


def _verdict(change: float, seed: float) -> str:
    if abs(change - seed) <= AGREES_WITHIN:
        return "agrees"
    return "a larger cut" if change < seed else "a smaller cut"


def plots(turns: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    plt = pyplot()
    sandboxes = sorted(turns["sandbox"].unique())
    fig, axes = plt.subplots(1, len(sandboxes), figsize=(4.5 * len(sandboxes), 3.6), squeeze=False, sharey=True)
    for ax, sandbox in zip(axes[0], sandboxes):
        for harness, rows in turns[turns["sandbox"] == sandbox].groupby("harness"):
            values = rows["turn_ttft_ms"].sort_values().to_numpy()
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post", label=harness)
        ax.set(title=f"sandbox={sandbox}", xlabel="first-turn TTFT (ms)", xscale="log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of turns")
    axes[0][0].legend()
    cdf = save(fig, out / "ttft_cdf.png")

    labels = [f"{s}\n{h}" for s, h in zip(table["sandbox"], table["harness"])]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4))
    bottom = pd.Series(0.0, index=table.index)
    for part in PARTS:
        ax.bar(labels, table[part], bottom=bottom, label=part.removesuffix("_ms"))
        bottom += table[part]
    ax.set(ylabel="mean first-turn TTFT (ms)", title="where the first token's time goes")
    ax.legend(fontsize=8)
    return [cdf, save(fig, out / "ttft_breakdown.png")]


def report(paths: Path | list[Path], out: Path | None = None) -> str:
    """The report over every results file under `paths`; plots go to `out` (default: beside the first path)."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    files = results_files(*paths)
    turns = first_turns(files)
    if turns.empty:
        raise ValueError(f"no model calls in {len(files)} results file(s) under {', '.join(map(str, paths))}")
    table = cells(turns)
    out = out or (paths[0] if paths[0].is_dir() else paths[0].parent) / "report"
    written = plots(turns, table, out)
    shown = table.round(1).to_string(index=False)
    lines = [f"TTFT of each user turn's first token, {len(turns)} turns from {len(files)} results file(s)", shown, ""]
    lines += comparison(table) or ["  (no sandbox has both a coupled and a decoupled cell to compare)"]
    lines += ["", *[f"wrote {p}" for p in written]]
    sections = recovery_section(files, out) + context_section(files, out) + security_section(files) + hands_section(files)
    sections += load_section(files)
    return "\n".join(lines + sections)
