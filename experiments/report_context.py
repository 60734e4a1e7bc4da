"""The context part of `harnesslab report`: runs that differ in their context strategy, per (context, task).

Per cell: sessions that passed their check, model calls, input tokens in total (uncached, cache reads and
cache writes) and per call, the share read from the prompt cache, the share of each call's context that
the previous call had too (prefix stability), and the emulated TTFT, which grows with uncached input.
Next to it, the published figures users compare with: as context, not as targets for an emulated brain.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.figures import pyplot, save
from experiments.results import read_table

PUBLISHED = [
    "Anthropic: context editing cut token use 84 % in a 100-turn eval (clear_tool_results here)",
    "JetBrains: observation masking halved cost at the same solve rate (clear_tool_results / window here)",
]


def context_tables(files: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions and model calls (each with its context and task), with their total input; empty if one strategy."""
    sessions = read_table(files, "sessions")
    if sessions["context"].nunique() < 2:
        return pd.DataFrame(), pd.DataFrame()
    calls = read_table(files, "model_calls").merge(sessions[["run_id", "session_id", "context", "task"]], on=["run_id", "session_id"])
    for frame in (sessions, calls):
        frame["input_total"] = frame["input_tokens"] + frame["cache_read_tokens"] + frame["cache_write_tokens"]
    return sessions, calls


def context_cells(files: list[Path]) -> pd.DataFrame:
    return cells(*context_tables(files))


def cells(sessions: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    if sessions.empty:
        return sessions
    calls = calls.assign(stable_share=calls["stable_messages"] / calls["context_messages"])
    by = ["context", "task"]
    table = sessions.groupby(by).agg(sessions=("session_id", "size"), passed=("success", "sum"), calls=("turns", "mean"),
                                     input_per_session=("input_total", "mean"), cache_read=("cache_read_tokens", "sum"),
                                     input_sum=("input_total", "sum"))
    table["cache read %"] = 100 * table.pop("cache_read") / table.pop("input_sum")
    per_call = calls.groupby(by).agg(input_per_call=("input_total", "mean"), stable_prefix=("stable_share", "mean"),
                                     ttft_p50=("ttft_ms", "median"))
    table = table.join(per_call)
    full = table.xs("full", level="context")["input_per_session"] if "full" in table.index.get_level_values("context") else None
    table["tokens vs full %"] = [
        100 * (row["input_per_session"] / full[task] - 1) if full is not None and task in full.index else None
        for (_, task), row in table.iterrows()
    ]
    return table.reset_index()


def plot(calls: pd.DataFrame, table: pd.DataFrame, out: Path) -> Path:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(12, 4))
    table.pivot_table(index="task", columns="context", values="input_per_session").plot.bar(
        ax=left, rot=0, logy=True, ylabel="input tokens per session", title="what each strategy feeds the model")
    left.legend(fontsize=7, ncols=2)
    longest = calls.groupby("task")["call"].max().idxmax()
    for context, rows in calls[calls["task"] == longest].groupby("context"):
        per_call = rows.groupby("call")["input_total"].mean()
        right.plot(per_call.index, per_call.to_numpy(), label=context)
    right.set(xlabel="model call", ylabel="input tokens", title=f"context size per call: {longest}")
    right.legend(fontsize=7)
    return save(fig, out / "context.png")


def context_section(files: list[Path], out: Path) -> list[str]:
    sessions, calls = context_tables(files)
    if sessions.empty:
        return []
    table = cells(sessions, calls)
    return ["", "Context strategies per task (input tokens count cache reads and writes too)",
            table.round(2).to_string(index=False), *[f"  published: {line}" for line in PUBLISHED],
            f"wrote {plot(calls, table, out)}"]
