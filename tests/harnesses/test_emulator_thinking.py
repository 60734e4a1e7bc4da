"""Extended thinking, end to end (issue 21, item 3): the emulator's thinking blocks through the official SDK over HTTP
(streamed, signed, billed, cut by the budget and max_tokens, redacted on a seeded share, omitted on request, refused
when passed back changed), and the `anthropic` backend's thinking, sampling and tool_choice config, sent on every turn
request and checked before a run starts.

Sources: https://docs.claude.com/en/docs/build-with-claude/extended-thinking (streaming thinking, preserving thinking
blocks, thinking redaction, max tokens), anthropic.types.ThinkingConfigEnabledParam.display.
"""
from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest

from experiments.run.config_check import ConfigError
from experiments.run.job import compose_config, run_job
from experiments.results.tables import read_table
from experiments.tasks import policy_book
from harnesses.base import ModelError, ModelRequest
from harnesses.contexts.vocabulary import estimate_tokens
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import LatencyProfile
from harnesses.emulator.signatures import genuine, sign
from harnesses.emulator.thinking import REDACTED_SHARE
from harnesses.messages import content_problem
from harnesses.models.anthropic import AnthropicModel
from harnesses.models.emulator import EmulatorModel
from tests.conftest import ARITHMETIC, GREETING
from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import MODEL, WRITE_FILE, rejected, send, user

api = conformance.api  # the SDK client fixture
THINKING = {"type": "enabled", "budget_tokens": 1024}
FAST = {"base_ttft_ms": 1, "prefill_ms_per_1k_tokens": 0, "output_tokens_per_s": 0, "jitter_sigma": 0}


def asked(**fields: Any) -> dict[str, Any]:
    """The greeting task with the tool it needs, thinking on (fields change it)."""
    return {"model": MODEL, "max_tokens": 2048, "messages": user(GREETING), "tools": [WRITE_FILE], "thinking": THINKING, **fields}


def thought_tokens(block: Any) -> int:
    """The output tokens a thinking block of this text bills (the emulator's estimate of the block's JSON)."""
    return estimate_tokens([{"type": "thinking", "thinking": block.thinking}])


async def test_thinking_streams_as_thinking_and_signature_deltas(api):
    """#streaming-thinking: thinking_delta events, then a signature_delta, before the answer; the SDK's own stream
    helper assembles them into a thinking block whose signature the emulator accepts back."""
    request = asked()
    async with api.messages.stream(**request) as stream:
        deltas = [event.delta.type async for event in stream if event.type == "content_block_delta"]
        message = await stream.get_final_message()
    first, *rest = message.content
    assert first.type == "thinking" and first.thinking.startswith("The task asks: Create a file named hello.txt")
    assert genuine(first.thinking, first.signature)
    assert [b.type for b in rest] == ["tool_use"] and message.stop_reason == "tool_use"
    assert deltas.index("signature_delta") == deltas.count("thinking_delta") >= 2  # all thinking, then its signature
    assert deltas[-1] == "input_json_delta"


async def test_thinking_is_billed_in_output_tokens(api):
    """#max-tokens-and-context-window-size: thinking tokens are billed as output tokens."""
    thinking = await send(api, asked())
    plain = await send(api, asked(thinking={"type": "disabled"}))
    assert [b.type for b in plain.content] == ["tool_use"] and plain.content[0].input == thinking.content[1].input
    assert thinking.usage.output_tokens == plain.usage.output_tokens + thought_tokens(thinking.content[0])


async def test_thinking_tokens_take_streaming_time(emulator):
    """Thinking is generated like any output: at the emulated output rate, so it adds to the streamed latency."""
    slow = EmulatorServer(policy_book(), LatencyProfile(base_ttft_ms=1, prefill_ms_per_1k_tokens=0, output_tokens_per_s=1000,
                                                        jitter_sigma=0))
    url = await slow.start()
    try:
        async with anthropic.AsyncAnthropic(api_key="emulator", base_url=url, max_retries=0) as client:
            started = time.perf_counter()
            async with client.messages.stream(**asked()) as stream:
                message = await stream.get_final_message()
            elapsed = time.perf_counter() - started
    finally:
        await slow.stop()
    assert message.usage.output_tokens > thought_tokens(message.content[0]) > 50
    assert elapsed >= 0.9 * message.usage.output_tokens / 1000  # the emulator waits out every output token


async def test_the_budget_cuts_thinking_before_max_tokens_cuts_the_answer():
    """#max-tokens-and-context-window-size: thinking stops at budget_tokens, and the answer after it is whole. The API
    asks a budget of at least 1,024, more than this thinking takes: a loose emulator (which does not check budgets)
    shows a budget of 20 at work."""
    loose = EmulatorServer(policy_book(), LatencyProfile(**FAST), strict=False)
    url = await loose.start()
    try:
        async with anthropic.AsyncAnthropic(api_key="emulator", base_url=url, max_retries=0) as client:
            whole = await send(client, asked())
            cut = await send(client, asked(thinking={"type": "enabled", "budget_tokens": 20}))
    finally:
        await loose.stop()
    (block, use), full = cut.content, whole.content[0]
    assert thought_tokens(block) <= 20 < thought_tokens(full) and full.thinking.startswith(block.thinking)
    assert genuine(block.thinking, block.signature)
    assert (use, cut.stop_reason) == (whole.content[1], "tool_use")
    assert cut.usage.output_tokens == whole.usage.output_tokens - thought_tokens(full) + thought_tokens(block)


async def test_max_tokens_cuts_thinking_too(api):
    """https://docs.claude.com/en/api/messages (max_tokens): adaptive thinking has no budget but max_tokens; what
    does not fit is cut, thinking first in line."""
    cut = await send(api, asked(max_tokens=30, thinking={"type": "adaptive"}))
    [block] = cut.content
    assert block.type == "thinking" and genuine(block.thinking, block.signature)
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 30)
    whole = await send(api, asked(thinking={"type": "adaptive"}))
    assert whole.content[0].thinking.startswith(block.thinking) and len(whole.content[0].thinking) > len(block.thinking)


async def test_display_omitted_sends_a_signature_without_the_text(api):
    """anthropic.types.ThinkingConfigEnabledParam.display: omitted thinking is an empty text with a signature, billed
    as if shown; passed back unchanged it is taken, with text put into it, refused."""
    omitted = await send(api, asked(thinking={**THINKING, "display": "omitted"}))
    shown = await send(api, asked())
    block = omitted.content[0]
    assert (block.type, block.thinking) == ("thinking", "") and block.signature
    assert omitted.usage.output_tokens == shown.usage.output_tokens
    back = passed_back(omitted, thinking={**THINKING, "display": "omitted"})
    assert (await send(api, back)).content
    back["messages"][1]["content"][0]["thinking"] = shown.content[0].thinking
    await rejected(api, "thinking_blocks_genuine", "messages.1.content.0: Invalid `signature` in `thinking` block", back)


def passed_back(message: anthropic.types.Message, **fields: Any) -> dict[str, Any]:
    """The next request of the loop: the answer as the assistant's turn, its tool use answered."""
    content = [block.model_dump(exclude_none=True) for block in message.content]
    use = next(b for b in content if b["type"] == "tool_use")
    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "wrote hello.txt"}
    return asked(messages=[*user(GREETING), {"role": "assistant", "content": content}, {"role": "user", "content": [result]}], **fields)


async def test_a_thinking_block_passed_back_changed_is_refused(api):
    """#preserving-thinking-blocks: the block goes back exactly as it came; changed or left out, the request is a 400."""
    first = await send(api, asked())
    back = passed_back(first)
    assert (await send(api, back)).content[0].type == "thinking"  # the loop goes on, thinking again
    changed = passed_back(first)
    changed["messages"][1]["content"][0]["thinking"] += " And one more thought."
    await rejected(api, "thinking_blocks_genuine", "messages.1.content.0: Invalid `signature` in `thinking` block", changed)
    dropped = passed_back(first)
    del dropped["messages"][1]["content"][0]
    await rejected(api, "thinking_on_tool_turn", "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`",
                   dropped)


async def test_a_seeded_share_of_thinking_comes_redacted(api):
    """#thinking-redaction: some thinking comes as redacted_thinking, opaque data to pass back as it is. The share is
    drawn from each request's seed: the same requests redact the same blocks again."""
    requests = [asked(messages=user(ARITHMETIC), tools=[], system=f"Attempt {n}.") for n in range(200)]
    kinds = [[(await send(api, r)).content[0].type for r in requests] for _ in range(2)]
    assert kinds[0] == kinds[1]
    redacted = kinds[0].count("redacted_thinking")
    assert kinds[0].count("thinking") + redacted == len(requests)
    assert 0 < redacted <= 3 * REDACTED_SHARE * len(requests), redacted  # 10 expected; 4 drawn (binomial: 0 to 22)
    message = await send(api, requests[kinds[0].index("redacted_thinking")])
    assert message.content[0].data and message.usage.output_tokens > 20  # billed like the thinking it stands for


async def test_redacted_thinking_goes_back_and_the_loop_goes_on(api):
    """#thinking-redaction: a redacted block passed back is taken; it starts its tool turn as a thinking block would."""
    for n in range(200):
        first = await send(api, asked(system=f"Attempt {n}."))  # another request, another seed
        if first.content[0].type == "redacted_thinking":
            break
    else:
        pytest.fail("no redacted thinking in 200 requests")
    back = passed_back(first)
    assert (await send(api, back)).content


# -- the anthropic backend's config ------------------------------------------------------------------------------

@pytest.mark.parametrize("options, named", [
    ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "model.thinking.budget_tokens=512; valid: a whole number >= 1024"),
    ({"thinking": {"type": "enabled"}}, "model.thinking.budget_tokens=None"),
    ({"thinking": {"type": "sometimes"}}, "model.thinking={'type': 'sometimes'}; valid: null, {type: enabled"),
    ({"thinking": {"type": "adaptive", "budget_tokens": 2048}}, "model.thinking.budget_tokens: not a field of a adaptive"),
    ({"thinking": {"type": "adaptive", "display": "full"}}, "model.thinking.display='full'; valid: summarized, omitted"),
    ({"temperature": 1.5}, "model.temperature=1.5; valid: a number from 0 to 1"),
    ({"top_p": -0.1}, "model.top_p=-0.1; valid: a number from 0 to 1"),
    ({"top_k": 2.5}, "model.top_k=2.5; valid: a whole number >= 0"),
    ({"temperature": 0.5, "top_p": 0.9}, "set one of them, not both"),
    ({"tool_choice": {"type": "tool"}}, "model.tool_choice.name=None; valid: the name of an offered tool"),
    ({"tool_choice": {"type": "none", "disable_parallel_tool_use": True}}, "model.tool_choice.disable_parallel_tool_use: not a field"),
    ({"tool_choice": "auto"}, "model.tool_choice='auto'; valid: null, {type: auto}"),
    ({"thinking": THINKING, "temperature": 0.5}, "model.temperature=0.5 with model.thinking on; valid: 1, or null"),
    ({"thinking": {"type": "adaptive"}, "top_k": 5}, "model.top_k=5 with model.thinking on"),
    ({"thinking": THINKING, "top_p": 0.5}, "model.top_p=0.5 with model.thinking on; valid: a number from 0.95 to 1"),
    ({"thinking": THINKING, "tool_choice": {"type": "any"}}, "model.tool_choice={'type': 'any'} with model.thinking on"),
])
def test_a_config_the_api_would_refuse_is_refused_when_the_backend_is_built(options, named):
    with pytest.raises(ValueError) as caught:
        AnthropicModel(**options)
    assert named in str(caught.value)


def test_a_bad_thinking_config_stops_a_run_before_it_starts(tmp_path):
    cfg = compose_config(["store=memory", "model.thinking={type:enabled,budget_tokens:100}"])
    with pytest.raises(ConfigError, match="model.thinking.budget_tokens=100; valid: a whole number >= 1024"):
        run_job(cfg, tmp_path, {"harness": "decoupled", "sandbox": "local"})


async def test_the_backend_thinks_on_turns_not_on_a_strategys_own_calls():
    """Config goes with turn requests (the request's own options win), not with a compaction's summary call; a
    budget not below the request's max_tokens is named before anything is sent."""
    model = EmulatorModel(policy_book(), latency=FAST, thinking=THINKING, temperature=1)
    await model.start()
    try:
        turn = ModelRequest("", user(GREETING), [WRITE_FILE], 2048)
        assert [b["type"] for b in (await model.respond(turn)).content] == ["thinking", "tool_use"]
        compaction = ModelRequest("", user(GREETING), [WRITE_FILE], 2048, purpose="compaction")
        assert [b["type"] for b in (await model.respond(compaction)).content] == ["tool_use"]
        own = ModelRequest("", user(GREETING), [WRITE_FILE], 2048, options={"thinking": {"type": "disabled"}})
        assert [b["type"] for b in (await model.respond(own)).content] == ["tool_use"]
        with pytest.raises(ModelError, match=r"model.thinking.budget_tokens=1024 must be below the request's max_tokens=1024"):
            await model.respond(ModelRequest("", user(GREETING), [WRITE_FILE], 1024))
        assert model.server.served["rejected"] == 0
    finally:
        await model.close()


async def test_sampling_and_tool_choice_config_reach_the_api():
    """model.tool_choice and model.temperature go with each turn request (tool_choice none: the emulator leaves the
    brain's tool use out); the request's own options win, and are merged with the config's, not instead of it."""
    model = EmulatorModel(policy_book(), latency=FAST, tool_choice={"type": "none"}, temperature=0.5)
    await model.start()
    try:
        [said] = (await model.respond(ModelRequest("", user(GREETING), [WRITE_FILE], 2048))).content
        own = ModelRequest("", user(GREETING), [WRITE_FILE], 2048, options={"tool_choice": {"type": "auto"}})
        kinds = [b["type"] for b in (await model.respond(own)).content]
        thinking = ModelRequest("", user(GREETING), [WRITE_FILE], 2048, options={"thinking": THINKING})
        with pytest.raises(ModelError, match="400 invalid_request_error"):  # the API's: temperature 0.5 with thinking
            await model.respond(thinking)
        [refused] = model.server.rejections
    finally:
        await model.close()
    assert said["type"] == "text" and "(tool_choice none)" in said["text"] and kinds == ["tool_use"]
    assert refused.rule == "thinking_sampling" and refused.body["temperature"] == 0.5


@pytest.mark.slow
def test_a_whole_run_with_thinking_completes_every_smoke_task(tmp_path, capsys):
    """`harnesslab run model.thinking={type:enabled,budget_tokens:1024}`: every model.response logged starts with its
    thinking block, every turn passes it back, and the strict emulator refuses nothing."""
    cfg = compose_config(["store=memory", "model.thinking={type:enabled,budget_tokens:1024}"])
    results = run_job(cfg, tmp_path, {"harness": "decoupled", "sandbox": "local"})
    sessions, events = read_table([results], "sessions"), read_table([results], "events")
    assert (sessions["status"] == "completed").all(), sessions[["task", "status"]]
    responses = events[events["type"] == "model.response"]
    assert len(responses) >= len(sessions)
    firsts = [_content(data)[0]["type"] for data in responses["data"]]
    assert set(firsts) <= {"thinking", "redacted_thinking"} and "thinking" in firsts
    assert "10/10 sessions succeeded" in capsys.readouterr().out


def _content(data: Any) -> list[dict[str, Any]]:
    import json

    return (json.loads(data) if isinstance(data, str) else data)["content"]


@pytest.mark.parametrize("block, named", [
    ({"type": "thinking", "thinking": "Hm."}, "content block 0 (thinking) must have a string signature, got null"),
    ({"type": "thinking", "signature": "c2ln"}, "content block 0 (thinking) must have a string thinking, got null"),
    ({"type": "redacted_thinking", "data": 7}, "content block 0 (redacted_thinking) must have a string data, got int 7"),
])
def test_a_thinking_block_that_could_not_go_back_is_a_malformed_response(block, named):
    """A response is logged only if later turns can pass its thinking back as the API requires (ThinkingBlockParam,
    RedactedThinkingBlockParam): the harness refuses it at once, not the API at every later turn."""
    assert content_problem([block, {"type": "text", "text": "4"}]) == named
    assert content_problem([{"type": "thinking", "thinking": "", "signature": "c2ln"}, {"type": "redacted_thinking", "data": "ZA=="}]) is None


async def test_a_compacted_tool_turn_starts_with_its_thinking_after_the_compaction_block(api):
    """https://platform.claude.com/docs/en/build-with-claude/compaction: a compacting answer starts with the compaction
    block, then thinks; that turn passed back is taken (rule thinking_on_tool_turn looks past the block), and without
    its thinking block it is refused as any tool turn would be."""
    def compacted(*first: dict[str, Any]) -> dict[str, Any]:
        use = {"type": "tool_use", "id": "toolu_1", "name": "write_file", "input": {"path": "hello.txt", "content": "hi"}}
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "wrote hello.txt"}
        return asked(messages=[*user(GREETING), {"role": "assistant", "content": [{"type": "compaction", "content": "[summary]"}, *first, use]},
                               {"role": "user", "content": [result]}],
                     context_management={"edits": [{"type": "compact_20260112"}]})

    beta = {"anthropic-beta": "compact-2026-01-12"}
    signed = {"type": "thinking", "thinking": "Write it.", "signature": sign("Write it.")}
    assert (await send(api, compacted(signed), beta)).content
    await rejected(api, "thinking_on_tool_turn", "messages.1.content.1.type: Expected `thinking` or `redacted_thinking`, "
                   "but found `tool_use`", compacted(), headers=beta)
