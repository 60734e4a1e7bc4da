"""The shards task on one hand and on four: the report's hands section and the traces say which hand ran what."""
from __future__ import annotations

import asyncio
import json

from experiments.run.job import compose_config, run_job
from experiments.report.main import report
from experiments.report.hands import hands_table
from experiments.results.tables import read_table
from experiments.sessions.sources import open_source
from experiments.sessions.traces import export_traces


def test_the_report_shows_the_speedup_of_several_hands_and_traces_name_the_hand_of_each_tool_call(tmp_path):
    results = [
        run_job(compose_config(["store=memory", "model=scripted", "tasks=hands", f"harness.hands={hands}"]), tmp_path / name,
                {"harness": "decoupled", "sandbox": "local"})
        for name, hands in (("one", "[main]"), ("four", "[a,b,c,d]"))
    ]
    table = hands_table(results).set_index("hands")
    assert list(table.index) == [1, 4] and table["success"].tolist() == [1.0, 1.0]
    assert table.loc[1, "hands_used"] == 1 and table.loc[4, "hands_used"] == 4
    # 8 one-second shards: in turn on one hand, four at a time on four
    assert table.loc[1, "speedup"] == 1.0 and table.loc[4, "speedup"] > 2
    assert "Hands: one brain, several sandboxes" in report(results, tmp_path / "report")

    async def export():
        store = open_source(str(results[1]))
        try:
            return await export_traces(store, tmp_path / "traces.jsonl")
        finally:
            await store.close()

    asyncio.run(export())
    spans = [json.loads(line)["attributes"] for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    named = sorted(s["harnesslab.hand_name"] for s in spans if s.get("gen_ai.operation.name") == "execute_tool")
    assert named == sorted(read_table(results[1:], "tool_calls")["hand_name"]) and set(named) == {"a", "b", "c", "d"}
