"""The table a run prints: per task success, turns, tool calls, TTFT and tokens."""
from __future__ import annotations

import pandas as pd


def _ms(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def summary_table(sessions: pd.DataFrame, model_calls: pd.DataFrame) -> str:
    ttft = model_calls.dropna(subset=["turn_ttft_ms"]).merge(sessions[["session_id", "task"]], on="session_id")
    rows = []
    for task, group in sessions.groupby("task", sort=False):
        task_ttft = ttft.loc[ttft["task"] == task, "turn_ttft_ms"]
        rows.append({
            "task": task,
            "success": f"{int(group['success'].sum())}/{len(group)}",
            "turns": f"{group['turns'].mean():.1f}",
            "tool calls": f"{group['tool_calls'].mean():.1f}",
            "tool errors": int(group["tool_errors"].sum()),
            "TTFT p50 ms": _ms(task_ttft.quantile(0.5)),
            "TTFT p95 ms": _ms(task_ttft.quantile(0.95)),
            "tokens in/out": f"{int(group['input_tokens'].sum())}/{int(group['output_tokens'].sum())}",
        })
    table = pd.DataFrame(rows).to_string(index=False)
    all_ttft = ttft["turn_ttft_ms"]
    total = (
        f"{int(sessions['success'].sum())}/{len(sessions)} sessions succeeded · "
        f"{int(sessions['turns'].sum())} model calls · {int(sessions['tool_calls'].sum())} tool calls · "
        f"TTFT p50 {_ms(all_ttft.quantile(0.5))} ms, p95 {_ms(all_ttft.quantile(0.95))} ms · "
        f"{int(sessions['input_tokens'].sum())} input / {int(sessions['output_tokens'].sum())} output tokens, "
        f"{int(sessions['cache_read_tokens'].sum())} read from cache · {int(model_calls['retries'].sum())} retries"
    )
    failures = sessions.loc[~sessions["success"].astype(bool), ["task", "instance", "check_detail"]]
    lines = [table, "", total]
    lines += [f"  FAILED {r.task}#{r.instance}: {r.check_detail}" for r in failures.itertuples()]
    return "\n".join(lines)
