"""The table a run prints: per task success, turns, tool calls, TTFT and tokens.

Input tokens are all the model was fed: uncached + written to the prompt cache + read from it (the API
reports the three apart; `input_tokens` alone is only the uncached part).
"""
from __future__ import annotations

import pandas as pd

INPUT_PARTS = {"uncached": "input_tokens", "cache write": "cache_write_tokens", "cache read": "cache_read_tokens"}


def _ms(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _mean(values: pd.Series) -> str:
    """A mean of counts: whole as an integer, otherwise with one decimal."""
    mean = values.mean()
    return "-" if pd.isna(mean) else f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.1f}"


def input_total(frame: pd.DataFrame) -> int:
    return int(sum(frame[column].sum() for column in INPUT_PARTS.values()))


def summary_table(sessions: pd.DataFrame, model_calls: pd.DataFrame) -> str:
    ttft = model_calls.dropna(subset=["turn_ttft_ms"]).merge(sessions[["session_id", "task"]], on="session_id")
    rows = []
    for task, group in sessions.groupby("task", sort=False):
        task_ttft = ttft.loc[ttft["task"] == task, "turn_ttft_ms"]
        rows.append({
            "task": task,
            "success": f"{int(group['success'].sum())}/{len(group)}",
            "turns": _mean(group["turns"]),
            "tool calls": _mean(group["tool_calls"]),
            "tool errors": int(group["tool_errors"].sum()),
            "TTFT p50 ms": _ms(task_ttft.quantile(0.5)),
            "TTFT p95 ms": _ms(task_ttft.quantile(0.95)),
            "tokens in/out": f"{input_total(group)}/{int(group['output_tokens'].sum())}",
        })
    table = pd.DataFrame(rows).to_string(index=False)
    all_ttft = ttft["turn_ttft_ms"]
    parts = " + ".join(f"{int(sessions[column].sum())} {name}" for name, column in INPUT_PARTS.items())
    total = (
        f"{int(sessions['success'].sum())}/{len(sessions)} sessions succeeded · "
        f"{int(sessions['turns'].sum())} model calls · {int(sessions['tool_calls'].sum())} tool calls · "
        f"TTFT p50 {_ms(all_ttft.quantile(0.5))} ms, p95 {_ms(all_ttft.quantile(0.95))} ms · "
        f"{input_total(sessions)} input tokens ({parts}) / {int(sessions['output_tokens'].sum())} output · "
        f"{int(model_calls['retries'].sum())} retries"
    )
    failures = sessions.loc[~sessions["success"].astype(bool), ["task", "instance", "check_detail"]]
    lines = [table, "", total]
    lines += [f"  FAILED {r.task}#{r.instance}: {r.check_detail}" for r in failures.itertuples()]
    return "\n".join(lines)
