"""What the runs under a report are: one row per run with the choices that make its cell, and which of them
vary. Each section of `harnesslab report` decides from this whether the runs are what it is about."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.results.tables import read_table

RECORDED = ("harness", "model", "sandbox", "store", "context", "faults")  # as the sessions table records them
DIMENSIONS = (*RECORDED, "tasks", "workers", "hands")


def run_cells(files: list[Path]) -> pd.DataFrame:
    """One row per run: its run_id and every dimension (the tasks' suite, worker processes, number of hands)."""
    runs = read_table(files, "runs")
    config = runs["config"].map(json.loads)
    runs["tasks"] = config.map(lambda c: c.get("tasks", {}).get("name"))
    runs["workers"] = config.map(lambda c: int(c.get("run", {}).get("workers") or 0))
    runs["hands"] = config.map(lambda c: len(c.get("harness", {}).get("hands") or ["main"]))
    parts = read_table(files, "sessions").groupby("run_id")[list(RECORDED)].first()
    runs = runs[["run_id", "tasks", "workers", "hands"]].join(parts, on="run_id")
    runs["faults"] = runs["faults"].fillna("none").replace("", "none")
    return runs[["run_id", *DIMENSIONS]]


def varying(runs: pd.DataFrame) -> list[str]:
    """The dimensions whose value differs between the runs, in DIMENSIONS' order."""
    return [d for d in DIMENSIONS if runs[d].astype(str).nunique() > 1]


def described(runs: pd.DataFrame) -> str:
    """What the runs vary, with the values ("harness: coupled, decoupled · sandbox: local, namespace"), or their
    one cell when nothing varies."""
    varied = varying(runs)
    if not varied:
        first = runs.iloc[0]
        return "one cell: " + " ".join(f"{d}={first[d]}" for d in DIMENSIONS)
    return "varying " + " · ".join(f"{d}: {', '.join(sorted(runs[d].astype(str).unique()))}" for d in varied)
