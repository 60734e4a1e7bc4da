"""The load part of `harnesslab report` (and of `make bench`'s scale group): per run, what the harness
added to each model call and what it cost the machine.

overhead: from the event that made a model call due (a user message, a tool result) to its request
leaving — the harness's own time (log appends, context, queueing for the event loop). client lag: the
SDK's TTFT minus the TTFT the emulator chose (transport, and the harness process being too busy to read).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.results.tables import read_table

TARGETS = {"overhead_p95_ms": 20.0, "peak_rss_mb": 2048.0}  # issue 11: 1,000 concurrent sessions on one machine


def load_table(files: list[Path], min_sessions: int = 1) -> pd.DataFrame:
    """One row per run of at least `min_sessions` sessions: its cell, sessions, throughput, overhead p50/p95,
    client lag p95, memory (the other tables are read only if a run qualifies)."""
    load = read_table(files, "load", missing_ok=True)
    if "errors" in load:  # results written before the column was named for what it counts
        old = load.pop("errors")
        load["failed"] = load["failed"].fillna(old) if "failed" in load else old
    if load.empty or (load := load[load["sessions"] >= min_sessions]).empty:
        return pd.DataFrame()
    sessions = read_table(files, "sessions").groupby("run_id")[["store", "sandbox", "harness"]].first()
    calls = read_table(files, "model_calls")
    calls["lag_ms"] = calls["ttft_ms"] - calls["server_ttft_ms"]
    by_run = calls.groupby("run_id")
    stats = pd.DataFrame({
        "overhead_p50_ms": by_run["overhead_ms"].quantile(0.5), "overhead_p95_ms": by_run["overhead_ms"].quantile(0.95),
        # a session's first call: its user message commits, then a harness wakes and reads the log
        "first_call_p95_ms": calls[calls["call"] == 1].groupby("run_id")["overhead_ms"].quantile(0.95),
        "lag_p95_ms": by_run["lag_ms"].quantile(0.95),
    })
    table = load.join(sessions, on="run_id").join(stats, on="run_id")
    columns = ["store", "sandbox", "harness", "sessions", "peak_sessions", "failed", "turns_per_s", "overhead_p50_ms",
               "overhead_p95_ms", "first_call_p95_ms", "lag_p95_ms", "cpu_s", "peak_rss_mb", "model_server_cpu_s", "model_server_rss_mb"]
    return table[columns].sort_values(["store", "sandbox", "harness"]).reset_index(drop=True)


def load_section(files: list[Path], min_sessions: int = 100) -> list[str]:
    """The section, for runs of at least `min_sessions` sessions (smaller runs say little about load)."""
    table = load_table(files, min_sessions)
    if table.empty:
        return []
    shown = table.rename(columns={"peak_sessions": "in flight", "turns_per_s": "calls/s", "model_server_rss_mb": "server_rss_mb",
                                 "model_server_cpu_s": "server_cpu_s"})
    lines = ["", "Load: what the harness adds to each model call, and what it costs (runs of >= "
             f"{min_sessions} sessions)", shown.round(1).to_string(index=False)]
    worst_overhead, worst_rss = table["overhead_p95_ms"].max(), table["peak_rss_mb"].max()
    lines.append(
        f"  worst cell: overhead p95 {worst_overhead:.1f} ms (target <= {TARGETS['overhead_p95_ms']:.0f}), peak RSS "
        f"{worst_rss:.0f} MB (target <= {TARGETS['peak_rss_mb']:.0f}), {int(table['failed'].sum())} of "
        f"{int(table['sessions'].sum())} sessions failed")
    return lines
