"""The harness's backend keeps what a server's own compaction step billed (usage.iterations of type compaction),
which the top-level usage leaves out, so a model.response logs it (issue 21, item 4)."""
from __future__ import annotations

from harnesses.base import ModelRequest, Usage
from harnesses.emulator.service import prompt_tokens
from harnesses.models.emulator import EmulatorModel
from sandboxes.tools import TOOLS
from tests.harnesses.test_emulator_conformance_context import COMPACT, COMPACTING, tool_log

QUICK = {"base_ttft_ms": 1.0, "output_tokens_per_s": 100_000.0, "jitter_sigma": 0.0}


async def respond(request: ModelRequest) -> Usage:
    model = EmulatorModel("experiments.tasks.policy_book", latency=QUICK, max_attempts=1)
    try:
        return (await model.respond(request)).usage
    finally:
        await model.close()


async def test_a_server_compaction_step_is_counted_beside_the_message_and_logged():
    messages, tools = tool_log(5, "x" * 1200), [TOOLS["read_file"].to_api()]
    edit = {**COMPACT, "trigger": {"type": "input_tokens", "value": 1_000}}
    usage = await respond(ModelRequest("", messages, tools, 4096, options={"context_management": {"edits": [edit]}},
                                       betas=(COMPACTING,)))
    assert usage.compaction_input_tokens == prompt_tokens({"messages": messages, "tools": tools})
    assert usage.compaction_output_tokens > 0 and usage.input_tokens < usage.compaction_input_tokens
    assert usage.to_dict()["compaction_output_tokens"] == usage.compaction_output_tokens


async def test_a_call_without_compaction_logs_the_four_counts_alone():
    usage = await respond(ModelRequest("", tool_log(1), [TOOLS["read_file"].to_api()], 4096))
    assert usage.compaction_input_tokens == usage.compaction_output_tokens == 0
    assert set(usage.to_dict()) == {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"}
