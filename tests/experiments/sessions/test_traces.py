"""Sessions as OpenTelemetry traces: one per session, a span per model call and tool call, GenAI attributes."""
from __future__ import annotations

import asyncio
import json

from experiments.run.job import compose_config, run_job
from experiments.results.tables import read_table
from experiments.sessions.sources import open_source
from experiments.sessions.traces import export_traces


def test_each_session_is_a_trace_of_its_model_and_tool_calls_with_token_usage(tmp_path):
    results = run_job(compose_config(["store=memory", "model=scripted", "tasks.only=[fix_bug,count_rows]"]), tmp_path, {})

    async def export():
        store = open_source(str(results))
        try:
            return await export_traces(store, tmp_path / "traces.jsonl")
        finally:
            await store.close()

    sessions, count = asyncio.run(export())
    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    calls, tools = read_table([results], "model_calls"), read_table([results], "tool_calls")
    assert sessions == 2 and count == len(spans) == 2 + len(calls) + len(tools)
    roots = {s["context"]["trace_id"]: s for s in spans if s["parent_id"] is None}
    assert len(roots) == 2 and {r["attributes"]["gen_ai.operation.name"] for r in roots.values()} == {"invoke_agent"}
    for span in spans:
        root = roots[span["context"]["trace_id"]]
        assert span is root or span["parent_id"] == root["context"]["span_id"]
        assert span["start_time"] <= span["end_time"]
    chats = [s for s in spans if s["attributes"]["gen_ai.operation.name"] == "chat"]
    assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in chats) == calls["input_tokens"].sum()
    assert {s["attributes"]["gen_ai.request.model"] for s in chats} == {"scripted"} and all(s["kind"] == "SpanKind.CLIENT" for s in chats)
    executed = sorted(s["attributes"]["gen_ai.tool.name"] for s in spans if s["attributes"]["gen_ai.operation.name"] == "execute_tool")
    assert executed == sorted(tools["name"]) and "edit_file" in executed
