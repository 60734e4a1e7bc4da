"""The hands part of `harnesslab report`: runs whose harness held several hands (`harness.hands`), by number of
hands: session time p50, and the speedup over one hand on the same task and sandbox."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.results.tables import read_table
from experiments.report.sweeps import run_cells


def hands_table(files: list[Path]) -> pd.DataFrame:
    """Per task, sandbox and number of hands; empty when no run held several hands (its tables are not read)."""
    runs = run_cells(files)
    if runs["hands"].max() < 2:
        return pd.DataFrame()
    sessions = read_table(files, "sessions").merge(runs[["run_id", "hands"]], on="run_id")
    tools = read_table(files, "tool_calls").groupby(["run_id", "session_id"])["hand_name"].nunique().rename("hands_used")
    sessions = sessions.join(tools, on=["run_id", "session_id"])
    grouped = sessions.groupby(["task", "sandbox", "hands"])
    table = pd.DataFrame({
        "sessions": grouped.size(), "success": grouped["success"].mean(),
        "hands_used": grouped["hands_used"].max().fillna(1).astype(int),
        "duration_p50_ms": grouped["duration_ms"].median(),
    }).reset_index()
    one = table[table["hands"] == 1].set_index(["task", "sandbox"])["duration_p50_ms"]
    table["speedup"] = [one.get((t, s), float("nan")) / d for t, s, d in zip(table["task"], table["sandbox"], table["duration_p50_ms"])]
    return table


def hands_section(files: list[Path]) -> list[str]:
    """Only for results with a run of several hands."""
    table = hands_table(files)
    if table.empty:
        return []
    return ["", "Hands: one brain, several sandboxes; tool calls on different hands run at the same time",
            table.round(2).to_string(index=False)]
