"""Every table of results.duckdb, its columns and their DuckDB types, in one place.

SCHEMA holds the tables every run writes (`events` is declared by stores/archive.py, which also writes it
for `harnesslab export`); a run under faults adds FAULTS_TABLE and RECOVERY_TABLE (experiments/faults/findings.py).
New columns may be added; none is renamed or removed, so older results files still read.
"""
from __future__ import annotations

from stores.archive import EVENTS_TABLE

# failed: sessions that did not complete (named `errors` in results written before)
LOAD_TABLE = {
    "run_id": "VARCHAR", "sessions": "INTEGER", "completed": "INTEGER", "failed": "INTEGER", "model_calls": "INTEGER",
    "tool_calls": "INTEGER", "wall_s": "DOUBLE", "cpu_s": "DOUBLE", "turns_per_s": "DOUBLE",
    "peak_rss_mb": "DOUBLE", "model_server_rss_mb": "DOUBLE", "model_server_cpu_s": "DOUBLE", "concurrency": "INTEGER",
    "arrivals_per_s": "DOUBLE", "peak_sessions": "INTEGER",
}

FAULTS_TABLE = {
    "run_id": "VARCHAR", "kind": "VARCHAR", "point": "VARCHAR", "target": "VARCHAR", "session_id": "VARCHAR",
    "at": "DOUBLE", "noticed": "BOOLEAN", "recovered_after_ms": "DOUBLE", "since_ready_ms": "DOUBLE", "sessions_held": "INTEGER",
}
RECOVERY_TABLE = {
    "run_id": "VARCHAR", "faults": "VARCHAR", "sessions": "INTEGER", "completed": "INTEGER", "succeeded": "INTEGER",
    "injected": "INTEGER", "injected_by_kind": "VARCHAR", "acked_events": "BIGINT", "lost_events": "INTEGER", "duplicate_effects": "INTEGER", "reruns": "INTEGER",
}

SCHEMA = {
    "runs": {
        # UTC; TIMESTAMP rather than TIMESTAMPTZ, whose conversion to pandas warns under pandas 3.1
        "run_id": "VARCHAR", "started": "TIMESTAMP", "finished": "TIMESTAMP", "config": "JSON",
        "choices": "JSON", "git_sha": "VARCHAR", "host": "VARCHAR", "python": "VARCHAR", "harnesslab": "VARCHAR",
    },
    "sessions": {
        "run_id": "VARCHAR", "session_id": "VARCHAR", "suite": "VARCHAR", "task": "VARCHAR", "instance": "INTEGER",
        "harness": "VARCHAR", "model": "VARCHAR", "sandbox": "VARCHAR", "store": "VARCHAR", "context": "VARCHAR",
        "faults": "VARCHAR", "status": "VARCHAR", "reason": "VARCHAR", "success": "BOOLEAN", "check_detail": "VARCHAR",
        "turns": "INTEGER", "tool_calls": "INTEGER", "tool_errors": "INTEGER",
        "input_tokens": "BIGINT", "output_tokens": "BIGINT", "cache_read_tokens": "BIGINT", "cache_write_tokens": "BIGINT",
        "first_ttft_ms": "DOUBLE", "duration_ms": "DOUBLE", "events": "INTEGER",
    },
    "model_calls": {
        "run_id": "VARCHAR", "session_id": "VARCHAR", "position": "INTEGER", "call": "INTEGER", "model": "VARCHAR",
        "stop_reason": "VARCHAR", "ttft_ms": "DOUBLE", "server_ttft_ms": "DOUBLE", "turn_ttft_ms": "DOUBLE",
        "overhead_ms": "DOUBLE", "latency_ms": "DOUBLE",
        "context_ms": "DOUBLE", "input_tokens": "BIGINT", "output_tokens": "BIGINT",
        "cache_read_tokens": "BIGINT", "cache_write_tokens": "BIGINT", "request_id": "VARCHAR",
        "retries": "INTEGER", "queue_ms": "DOUBLE", "provision_ms": "DOUBLE", "other_ms": "DOUBLE",
        "context_messages": "INTEGER", "stable_messages": "INTEGER",
    },
    "tool_calls": {
        "run_id": "VARCHAR", "session_id": "VARCHAR", "position": "INTEGER", "tool_use_id": "VARCHAR",
        "name": "VARCHAR", "hand": "VARCHAR", "hand_name": "VARCHAR", "duration_ms": "DOUBLE", "is_error": "BOOLEAN",
    },
    "violations": {"run_id": "VARCHAR", "session_id": "VARCHAR", "position": "INTEGER", "rule": "VARCHAR", "detail": "VARCHAR"},
    "load": LOAD_TABLE,  # see experiments/run/load.py
    "events": EVENTS_TABLE,
}
