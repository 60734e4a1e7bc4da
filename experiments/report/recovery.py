"""The recovery part of `harnesslab report`: runs with workers, at least one of them under faults, per (faults, harness, sandbox) cell.

Per cell: sessions completed and passing their check, faults injected, acknowledged events lost,
duplicate side effects, invariant violations, recovery time p50/p95 per fault kind, and the tokens a
session spent against the same harness and sandbox without faults (`faults=none`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.report.figures import pyplot, save
from experiments.results.tables import read_table

CELL = ["faults", "harness", "sandbox"]


def recovery_runs(files: list[Path]) -> pd.DataFrame:
    """One row per run with workers: its cell, its recovery totals, violations, and tokens per session."""
    runs = read_table(files, "recovery", missing_ok=True)
    if runs.empty:
        return runs
    sessions = read_table(files, "sessions")
    sessions["tokens"] = sessions["input_tokens"] + sessions["output_tokens"]
    per_run = sessions.groupby("run_id").agg(harness=("harness", "first"), sandbox=("sandbox", "first"),
                                             tokens_per_session=("tokens", "mean"))
    violations = read_table(files, "violations").groupby("run_id").size().rename("violations")
    return runs.join(per_run, on="run_id").join(violations, on="run_id").fillna({"violations": 0})


def cells(runs: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(CELL)
    table = grouped[["sessions", "completed", "succeeded", "injected", "lost_events", "duplicate_effects", "violations"]].sum()
    table["completed %"] = 100 * table["completed"] / table["sessions"]
    table["tokens/session"] = grouped["tokens_per_session"].mean()
    baseline = table.xs("none", level="faults")["tokens/session"] if "none" in table.index.get_level_values("faults") else None
    table["extra tokens %"] = [
        100 * (row["tokens/session"] / baseline[(h, s)] - 1) if baseline is not None and (h, s) in baseline.index else None
        for (_, h, s), row in table.iterrows()
    ]
    if not faults.empty:
        timed = faults.merge(runs[["run_id", *CELL]], on="run_id")
        recovery = timed.groupby(CELL)["recovered_after_ms"].quantile([0.5, 0.95]).unstack()
        table = table.join(recovery.rename(columns={0.5: "recovery p50 ms", 0.95: "recovery p95 ms"}))
    return table.reset_index()


def by_kind(runs: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    """Recovery time per fault kind and harness: from the fault, and from the replacement being ready."""
    if faults.empty:
        return faults
    timed = faults.merge(runs[["run_id", "harness"]], on="run_id")
    grouped = timed.groupby(["kind", "harness"])
    table = grouped[["recovered_after_ms", "since_ready_ms"]].quantile([0.5, 0.95]).unstack()
    table.columns = [f"{'recovery' if c == 'recovered_after_ms' else 'since ready'} p{int(q * 100)} ms" for c, q in table.columns]
    return grouped.size().rename("faults").to_frame().join(table).reset_index()


def plot(table: pd.DataFrame, faults: pd.DataFrame, runs: pd.DataFrame, out: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 if faults.empty else 2, figsize=(5.5 if faults.empty else 11, 4), squeeze=False)
    left = axes[0][0]
    shares = table.pivot_table(index=["faults", "sandbox"], columns="harness", values="completed %")
    shares.index = [f"{fault}\n{sandbox}" for fault, sandbox in shares.index]
    shares.plot.bar(ax=left, ylim=(0, 125), ylabel="sessions completed (%)", title="sessions that survived the faults", rot=0)
    left.legend(title="harness", fontsize=8, ncols=2, loc="upper center")
    left.tick_params(axis="x", labelsize=8)
    if not faults.empty:
        right = axes[0][1]
        timed = faults.merge(runs[["run_id", "harness"]], on="run_id").dropna(subset=["recovered_after_ms"])
        groups = [(f"{kind}\n{harness}", rows["recovered_after_ms"]) for (kind, harness), rows in timed.groupby(["kind", "harness"])]
        right.boxplot([values for _, values in groups], tick_labels=[label for label, _ in groups])
        right.set(yscale="log", ylabel="fault -> recovered (ms)", title="recovery time per fault")
        right.tick_params(axis="x", labelsize=8, labelrotation=30)
    return save(fig, out / "recovery.png")


def recovery_section(files: list[Path], out: Path) -> list[str]:
    """Only for runs with workers of which at least one asked for faults."""
    runs = recovery_runs(files)
    if runs.empty or (runs["faults"] == "none").all():
        return []
    faults = read_table(files, "faults", missing_ok=True)
    table = cells(runs, faults)
    columns = [c for c in table.columns if c not in ("completed", "tokens/session")]
    times = by_kind(runs, faults).round(1).to_string(index=False) if not faults.empty else "  (no fault was injected)"
    return [
        "", f"Recovery: {len(runs)} run(s) with worker processes, {int(table['injected'].sum())} faults injected",
        table[columns].round(1).to_string(index=False), "", "recovery time per fault kind (target: a killed worker's "
        "sessions resume within 500 ms of its successor being ready)", times, f"wrote {plot(table, faults, runs, out)}",
    ]
