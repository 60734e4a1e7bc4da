"""The context part of `harnesslab report`: runs that differ in their context strategy, per (context, model, task),
the model being the one the runs asked for (`model.model`: a sweep over windows, e.g. claude-emulated-6k).

Per cell: sessions that passed their check, model calls, input tokens in total (uncached, cache reads and
cache writes) and per call, the share read from the prompt cache, the share of each call's context that
the previous call had too (prefix stability), and the emulated TTFT, which grows with uncached input.
Next to it, the published figures users compare with, what the same strategies cost here, and why the two
can differ: the largest context of the sweep against the model's window.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.report.figures import pyplot, save
from experiments.results.tables import read_table

PUBLISHED = {  # what users compare with, and the strategies here that do the same
    "Anthropic: context editing cut token use 84 % in a 100-turn eval": ("clear_tool_results", "server_clear"),
    "JetBrains: observation masking halved cost at the same solve rate": ("clear_tool_results", "window"),
}
CONTEXT_WINDOW_TOKENS = 200_000  # Claude's; the emulator enforces no window, so a call may send more


def context_tables(files: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions and model calls (each with its context, model and task), with their total input; empty if one strategy."""
    sessions = read_table(files, "sessions")
    if sessions["context"].nunique() < 2:
        return pd.DataFrame(), pd.DataFrame()
    sessions["model"] = sessions["run_id"].map(requested_models(files)).fillna(sessions["model"])
    calls = read_table(files, "model_calls").drop(columns="model").merge(
        sessions[["run_id", "session_id", "context", "model", "task"]], on=["run_id", "session_id"])
    for frame in (sessions, calls):
        frame["input_total"] = frame["input_tokens"] + frame["cache_read_tokens"] + frame["cache_write_tokens"]
    return sessions, calls


def requested_models(files: list[Path]) -> dict[str, str]:
    """Each run's `model.model` (the model it asked for), for the runs whose model part has one."""
    runs = read_table(files, "runs")
    configs = {run: json.loads(config) if isinstance(config, str) else config for run, config in zip(runs["run_id"], runs["config"])}
    return {run: config["model"]["model"] for run, config in configs.items() if isinstance((config or {}).get("model", {}).get("model"), str)}


def context_cells(files: list[Path]) -> pd.DataFrame:
    return cells(*context_tables(files))


def cells(sessions: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    if sessions.empty:
        return sessions
    calls = calls.assign(stable_share=calls["stable_messages"] / calls["context_messages"])
    by = ["context", "model", "task"]
    table = sessions.groupby(by).agg(sessions=("session_id", "size"), passed=("success", "sum"), calls=("turns", "mean"),
                                     input_per_session=("input_total", "mean"), cache_read=("cache_read_tokens", "sum"),
                                     input_sum=("input_total", "sum"))
    table["cache read %"] = 100 * table.pop("cache_read") / table.pop("input_sum")
    per_call = calls.groupby(by).agg(input_per_call=("input_total", "mean"), stable_prefix=("stable_share", "mean"),
                                     ttft_p50=("ttft_ms", "median"))
    table = table.join(per_call)
    full = table.xs("full", level="context")["input_per_session"] if "full" in table.index.get_level_values("context") else None
    table["tokens vs full %"] = [
        100 * (row["input_per_session"] / full[(model, task)] - 1) if full is not None and (model, task) in full.index else None
        for (_, model, task), row in table.iterrows()
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
    right.set(xlabel="model call", ylabel="input tokens", title=f"context size per call: {longest} (window {CONTEXT_WINDOW_TOKENS:,})")
    right.legend(fontsize=7)
    return save(fig, out / "context.png")


def published(table: pd.DataFrame) -> list[str]:
    """Each published figure, next to what the strategies that do the same cost here against `full`."""
    lines = []
    for claim, strategies in PUBLISHED.items():
        ours = table[table["context"].isin(strategies)].dropna(subset=["tokens vs full %"])
        rows = ours[["context", "model", "task", "tokens vs full %"]].itertuples(index=False)
        here = ", ".join(f"{context} {task} ({model}) {change:+.0f} %" for context, model, task, change in rows)
        lines.append(f"  published: {claim}; here, tokens vs full: {here or 'no run of full to compare with'}")
    return lines


def why_they_differ(calls: pd.DataFrame) -> list[str]:
    """The largest context of the sweep against the model's window: the published savings are for logs that outgrow it."""
    largest = calls.loc[calls["input_total"].idxmax()]
    lines = [f"  the largest context a call sent here: {int(largest['input_total']):,} tokens ({largest['context']}, "
             f"{largest['task']}, call {int(largest['call'])}), {largest['input_total'] / CONTEXT_WINDOW_TOKENS:.1%} of "
             f"Claude's {CONTEXT_WINDOW_TOKENS:,}-token window"]
    full = calls.loc[calls["context"] == "full", "input_total"]
    if full.empty:
        return lines + ["  (no run of full here: how large the whole log grew is not known)"]
    if over := int((full > CONTEXT_WINDOW_TOKENS).sum()):
        return lines + [f"  the whole log (full) outgrew the window in {over} call(s): there, as in the published evals, "
                        "full is no option"]
    return lines + [f"  the whole log (full) peaked at {int(full.max()):,} tokens: on these tasks it fits the window, so full "
                    "drops nothing and keeps one cached prefix, and what another strategy drops the model may fetch again; "
                    "the published savings are for sessions whose log outgrows the window"]


def refused(sessions: pd.DataFrame) -> list[str]:
    """The sessions the API refused with a 400, per (context, model): every strategy's requests are valid
    (tests/harnesses/test_strategies_api_valid.py), so a 400 is a context that outgrew the model's window."""
    failed = sessions[sessions["reason"].fillna("").str.contains(" 400 invalid_request_error")]
    counts = failed.groupby(["model", "context"]).size()
    return [f"  refused with a 400 (the context outgrew the window): {', '.join(f'{context} on {model} {n}' for (model, context), n in counts.items())}"
            ] if not counts.empty else []


def context_section(files: list[Path], out: Path) -> list[str]:
    sessions, calls = context_tables(files)
    if sessions.empty:
        return []
    table = cells(sessions, calls)
    return ["", "Context strategies per task (input tokens count cache reads and writes too)",
            table.round(2).to_string(index=False), *published(table), *why_they_differ(calls), *refused(sessions),
            f"wrote {plot(calls, table, out)}"]
