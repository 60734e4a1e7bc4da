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
from stores.events import ContextCompacted, ModelResponse, ToolCall, ToolResult, UserMessage, typed

DUE_TYPES = (UserMessage.TYPE, ToolResult.TYPE, ContextCompacted.TYPE)  # events after which a model call is due


def model_call_rows(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    rows, due = [], None
    for event in events:
        if event.type in (ModelResponse.TYPE, ContextCompacted.TYPE):  # a compaction is a model call too
            call = typed(event)
            sent = call.requested_at if isinstance(call, ModelResponse) else None
            overhead_ms = (sent - due) * 1000 if sent is not None and due is not None else None  # due -> request sent
            rows.append({"session_id": session_id, "position": event.position, "call": len(rows) + 1,
                         "overhead_ms": overhead_ms, **_model_call(call)})
        if event.type in DUE_TYPES:
            due = event.ts
    return rows


def _model_call(call: ModelResponse | ContextCompacted) -> dict[str, Any]:
    compaction = isinstance(call, ContextCompacted)
    response = ModelResponse([]) if compaction else call  # what a compaction does not log reads as not logged
    usage, context, breakdown = call.usage, response.context, response.turn_breakdown or {}
    return {
        "model": call.model, "stop_reason": "compaction" if compaction else response.stop_reason,
        "ttft_ms": call.ttft_ms, "server_ttft_ms": response.server_ttft_ms, "turn_ttft_ms": response.turn_ttft_ms,
        "latency_ms": call.latency_ms, "context_ms": response.context_ms,
        "input_tokens": usage.get("input_tokens", 0), "output_tokens": usage.get("output_tokens", 0),
        "cache_read_tokens": usage.get("cache_read_input_tokens", 0),
        "cache_write_tokens": usage.get("cache_creation_input_tokens", 0), "request_id": call.request_id,
        "retries": len(response.retries),
        "context_messages": context.get("messages"), "stable_messages": context.get("stable_messages"),
        **{k: breakdown.get(k) for k in ("queue_ms", "provision_ms", "other_ms")},
    }


def tool_call_rows(session_id: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    """One row per tool.result, joined to the tool.call that started it (if the log has one)."""
    calls: dict[str, ToolCall] = {}
    rows = []
    for event in events:
        if event.type == ToolCall.TYPE:
            call = ToolCall.read(event)
            calls[call.tool_use_id] = call
        elif event.type == ToolResult.TYPE:
            result = ToolResult.read(event)
            call = calls.get(result.tool_use_id, ToolCall(result.tool_use_id))  # no tool.call logged: no hand known
            rows.append({
                "session_id": session_id, "position": event.position, "tool_use_id": result.tool_use_id,
                "name": result.name, "hand": call.hand, "hand_name": call.hand_name,
                "duration_ms": result.duration_ms, "is_error": bool(result.is_error),
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
