"""results.duckdb: one file per run, every metric derived from the session logs it archives."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from experiments.results.schema import SCHEMA
from stores.archive import (
    OFFLINE, UnreadableFile, attach_read_only, duckdb_error, held, tables_of, write_tables,
)
from stores.base import Event

DUE_TYPES = ("user.message", "tool.result", "context.compacted")  # events after which a model call is due


def model_call_rows(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    rows, due = [], None
    for event in events:
        if event.type == "model.response" and due is not None and event.data.get("requested_at") is not None:
            overhead_ms = (event.data["requested_at"] - due) * 1000  # the call was due -> its request was sent
        else:
            overhead_ms = None
        if event.type in DUE_TYPES:
            due = event.ts
        if event.type not in ("model.response", "context.compacted"):  # a compaction is a model call too
            continue
        d, usage = event.data, event.data.get("usage", {})
        rows.append({
            "session_id": session_id, "position": event.position, "call": len(rows) + 1, "model": d.get("model"),
            "stop_reason": d.get("stop_reason", "compaction" if event.type == "context.compacted" else None),
            "ttft_ms": d.get("ttft_ms"), "server_ttft_ms": d.get("server_ttft_ms"), "turn_ttft_ms": d.get("turn_ttft_ms"),
            "overhead_ms": overhead_ms,
            "latency_ms": d.get("latency_ms"), "context_ms": d.get("context_ms"),
            "input_tokens": usage.get("input_tokens", 0), "output_tokens": usage.get("output_tokens", 0),
            "cache_read_tokens": usage.get("cache_read_input_tokens", 0),
            "cache_write_tokens": usage.get("cache_creation_input_tokens", 0), "request_id": d.get("request_id"),
            "retries": len(d.get("retries", [])),
            "context_messages": d.get("context", {}).get("messages"), "stable_messages": d.get("context", {}).get("stable_messages"),
            **{k: d.get("turn_breakdown", {}).get(k) for k in ("queue_ms", "provision_ms", "other_ms")},
        })
    return rows


def tool_call_rows(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    """One row per tool.result, joined to the tool.call that started it (if the log has one)."""
    calls: dict[str, dict] = {}
    rows = []
    for event in events:
        d = event.data
        if event.type == "tool.call":
            calls[d.get("tool_use_id")] = d
        elif event.type == "tool.result":
            call = calls.get(d.get("tool_use_id"), {})
            rows.append({
                "session_id": session_id, "position": event.position, "tool_use_id": d.get("tool_use_id"),
                "name": d.get("name"), "hand": call.get("hand"), "hand_name": call.get("hand_name"),
                "duration_ms": d.get("duration_ms"), "is_error": bool(d.get("is_error")),
            })
    return rows


def session_totals(calls: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    first_ttft = next((c["turn_ttft_ms"] for c in calls if c["turn_ttft_ms"] is not None), None)
    return {
        "turns": len(calls), "tool_calls": len(tools), "tool_errors": sum(t["is_error"] for t in tools),
        "input_tokens": sum(c["input_tokens"] for c in calls), "output_tokens": sum(c["output_tokens"] for c in calls),
        "cache_read_tokens": sum(c["cache_read_tokens"] for c in calls),
        "cache_write_tokens": sum(c["cache_write_tokens"] for c in calls), "first_ttft_ms": first_ttft,
    }


def write_results(path: Path, run_id: str, tables: dict[str, Iterable[dict[str, Any]]]) -> None:
    """Create results.duckdb at `path` with every table of SCHEMA, `run_id` on every row. Nothing is at `path` until
    the file is complete (stores.archive.write_tables)."""
    write_tables(path, {
        table: (columns, ({**row, "run_id": run_id} for row in tables.get(table, []))) for table, columns in SCHEMA.items()
    })


def read_table(paths: Iterable[Path | str], table: str, missing_ok: bool = False) -> pd.DataFrame:
    """One table from one or many results files, as a pandas DataFrame. A file that is not a complete results file
    is an UnreadableFile naming it.

    `missing_ok`: files without the table (a run without faults has no `faults`) add no rows."""
    import duckdb

    files = [Path(p) for p in paths]
    if not files:
        raise FileNotFoundError("no results.duckdb files given")
    frames = []
    with duckdb.connect(config=OFFLINE) as con:
        for name, path in zip(attach_read_only(con, files), files):
            tables = tables_of(con, path, name)
            # events is the table a run writes last: a file without it is not one (or is what a killed run left)
            missing = [t for t in dict.fromkeys(["events", table]) if t not in tables and not (missing_ok and t == table)]
            if missing:
                raise UnreadableFile(f"{path} is not a complete results file: it has no {' or '.join(missing)} table "
                                     f"({held(tables)})")
            try:
                frames += [con.execute(f"SELECT * FROM {name}.{table}").df()] if table in tables else []
            except duckdb.Error as exc:
                raise duckdb_error(path, exc) from None
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
