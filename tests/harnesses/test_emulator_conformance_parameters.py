"""The request's parameters honoured, streamed and not (issue 21, item 2): max_tokens, stop_sequences, tool_choice,
disable_parallel_tool_use, temperature and top_p, service_tier and metadata; and strict validation loosened."""
from __future__ import annotations

import inspect
import random
from typing import Any

import anthropic
import pytest

from experiments.tasks import load_suite, policy_book
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import LatencyProfile
from harnesses.models.emulator import EmulatorModel
from tests.conftest import ARITHMETIC, GREETING, QUICK
from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import READ_FILE, WRITE_FILE, body, send, user

api = conformance.api  # the SDK client fixture
STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
UNKNOWN_TASK = "Tell me about the sea."  # no policy knows it: the brain answers a sentence saying so


async def final(api: anthropic.AsyncAnthropic, request: dict[str, Any], stream: bool) -> anthropic.types.Message:
    """The answer as a Message: created whole, or assembled by the SDK's stream helper from the events."""
    if not stream:
        return await send(api, request)
    typed = set(inspect.signature(api.messages.stream).parameters)
    fields = {k: v for k, v in request.items() if k in typed}
    async with api.messages.stream(**fields, extra_body={k: v for k, v in request.items() if k not in typed} or None) as events:
        return await events.get_final_message()


def text(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


@STREAMED
async def test_max_tokens_cuts_the_text(api, stream):
    """https://docs.claude.com/en/api/messages: generation stops at max_tokens; stop_reason and usage say so."""
    whole = await final(api, body(messages=user(UNKNOWN_TASK)), stream)
    cut = await final(api, body(max_tokens=8, messages=user(UNKNOWN_TASK)), stream)
    assert whole.stop_reason == "end_turn" and whole.usage.output_tokens > 8
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 8)
    assert text(whole).startswith(text(cut)) and 0 < len(text(cut)) < len(text(whole))


@STREAMED
async def test_max_tokens_leaves_out_a_tool_use_that_does_not_fit(api, stream):
    """https://docs.claude.com/en/api/messages: a tool use cut short is no tool use (its input would not be JSON)."""
    cut = await final(api, body(max_tokens=6, tools=[WRITE_FILE], messages=user(GREETING)), stream)
    assert (cut.stop_reason, cut.content, cut.usage.output_tokens) == ("max_tokens", [], 6)


async def test_max_tokens_zero_answers_nothing(api):
    """anthropic.types.message_create_params.MessageCreateParams.max_tokens: 0 only fills the prompt cache."""
    warmed = await send(api, body(max_tokens=0))
    assert (warmed.content, warmed.stop_reason, warmed.usage.output_tokens) == ([], "max_tokens", 0)


@STREAMED
async def test_stop_sequences_cut_before_the_sequence(api, stream):
    """https://docs.claude.com/en/api/messages#body-stop-sequences: the text stops before the first stop sequence;
    stop_reason is stop_sequence and stop_sequence names it."""
    whole = text(await final(api, body(messages=user(UNKNOWN_TASK)), stream))
    stopped = await final(api, body(messages=user(UNKNOWN_TASK), stop_sequences=["never there", "known", "policy"]), stream)
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "policy")
    assert text(stopped) == whole[:whole.index("policy")]
    missed = await final(api, body(messages=user(UNKNOWN_TASK), stop_sequences=["never there"]), stream)
    assert (missed.stop_reason, missed.stop_sequence, text(missed)) == ("end_turn", None, whole)


@STREAMED
async def test_tool_choice_none_forbids_a_tool_use(api, stream):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use: none, no tool use."""
    free = await final(api, body(tools=[WRITE_FILE], messages=user(GREETING)), stream)
    held = await final(api, body(tools=[WRITE_FILE], messages=user(GREETING), tool_choice={"type": "none"}), stream)
    assert free.stop_reason == "tool_use"
    assert held.stop_reason == "end_turn" and [b.type for b in held.content] == ["text"] and "write_file" in text(held)


@STREAMED
async def test_tool_choice_any_forces_a_tool_use(api, stream):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use: any, a tool use of
    an offered tool (with the input its schema requires), and no text before it."""
    forced = await final(api, body(tools=[READ_FILE, WRITE_FILE], messages=user(ARITHMETIC), tool_choice={"type": "any"}), stream)
    [use] = forced.content
    assert forced.stop_reason == "tool_use" and use.type == "tool_use" and use.name in ("read_file", "write_file")
    assert set(use.input) == set({"read_file": ["path"], "write_file": ["path", "content"]}[use.name])


@STREAMED
async def test_tool_choice_tool_forces_that_tool(api, stream):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use: tool, a use of it."""
    chosen = {"type": "tool", "name": "read_file"}
    forced = await final(api, body(tools=[READ_FILE, WRITE_FILE], messages=user(GREETING), tool_choice=chosen), stream)
    assert [(b.type, b.name, b.input) for b in forced.content] == [("tool_use", "read_file", {"path": ""})]
    kept = await final(api, body(tools=[READ_FILE, WRITE_FILE], messages=user(GREETING), tool_choice={**chosen, "name": "write_file"}), stream)
    assert kept.content[0].input == {"path": "hello.txt", "content": "hello, harnesslab\n"}  # the brain's own use, kept


@STREAMED
async def test_disable_parallel_tool_use(api, stream):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#parallel-tool-use: at most one."""
    [(_, _, task)] = load_suite("hands", only=["shards"], seed=0)
    bash = {"name": "bash", "description": "Run a command", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
    listing = {"type": "tool_use", "id": "toolu_ls", "name": "read_file", "input": {"path": "shards.txt"}}
    messages = [*user(task.prompt), {"role": "assistant", "content": [listing]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_ls", "content": "101\n202\n303\n"}]}]
    parallel = await final(api, body(max_tokens=1024, tools=[READ_FILE, bash], messages=messages), stream)
    single = await final(api, body(max_tokens=1024, tools=[READ_FILE, bash], messages=messages,
                                   tool_choice={"type": "auto", "disable_parallel_tool_use": True}), stream)
    assert len(parallel.content) == 3
    assert [b.input for b in single.content] == [parallel.content[0].input]


async def test_temperature_and_top_p_seed_the_latency_jitter():
    """https://docs.claude.com/en/api/messages#body-temperature: sampling parameters change the draw; the same request
    draws the same latency again."""
    server = EmulatorServer(policy_book(), LatencyProfile(base_ttft_ms=2, prefill_ms_per_1k_tokens=0, output_tokens_per_s=0,
                                                          jitter_sigma=0.5, seed=3))
    await server.start()
    try:
        async with anthropic.AsyncAnthropic(api_key="k", base_url=server.url, max_retries=0) as client:
            async def ttft(**sampling: float) -> str:
                raw = await client.messages.with_raw_response.create(**body(), extra_body=sampling)
                return raw.headers["x-emulator-ttft-ms"]

            draws = [await ttft(temperature=t / 10) for t in range(6)]
            assert len(set(draws)) == 6 and draws[2] == await ttft(temperature=0.2)
            assert await ttft(top_p=0.5) != await ttft(top_p=0.6)
    finally:
        await server.stop()


@STREAMED
async def test_service_tier_and_metadata_are_taken(api, stream):
    """https://docs.claude.com/en/api/service-tiers: usage.service_tier names the tier that served the request;
    metadata is taken, and not echoed (as the API does)."""
    answered = await final(api, body(service_tier="auto", metadata={"user_id": "u-9"}), stream)
    assert answered.usage.service_tier == "standard" and "metadata" not in answered.model_dump()


# -- strictness ------------------------------------------------------------------------------------


async def test_loose_validation_takes_what_strict_refuses():
    """harnesses/emulator/validation.py: strict=False checks only the shapes the emulator needs to answer at all."""
    server = EmulatorServer(policy_book(), QUICK, strict=False)
    await server.start()
    mark = {"type": "ephemeral"}
    sloppy = body(model="claude-nonexistent", system=[{"type": "text", "text": "x", "cache_control": mark}] * 5,
                  messages=[*user(ARITHMETIC), {"role": "assistant", "content": "So: "}])
    try:
        async with anthropic.AsyncAnthropic(api_key="k", base_url=server.url, max_retries=0) as client:
            assert (await send(client, sloppy)).content
            with pytest.raises(anthropic.BadRequestError, match="messages: at least one message is required"):
                await send(client, body(messages=[]))
        assert not server.rejections[-1].rule.startswith("cache")  # the one refused: the empty messages
    finally:
        await server.stop()


def test_the_emulator_model_says_what_is_wrong_with_its_options():
    """configs/model/emulator.yaml: strict is a boolean; the model must be known (or added under models)."""
    with pytest.raises(ValueError, match="model.strict='no'; valid: true"):
        EmulatorModel(policy_book(), strict="no")
    with pytest.raises(ValueError, match="model.model='claude-nope' is not a model the emulator knows; valid: claude-emulated"):
        EmulatorModel(policy_book(), model="claude-nope")
    with pytest.raises(ValueError, match="model.models.tiny: unknown key"):
        EmulatorModel(policy_book(), models={"tiny": {"context": 8000}})
    assert EmulatorModel(policy_book(), model="claude-nope", strict=False).strict is False
    assert EmulatorModel(policy_book(), model="tiny", models={"tiny": {"context_window": 8000, "max_output_tokens": 1000}})


async def test_a_model_added_in_config_is_known_with_its_limits():
    """https://docs.claude.com/en/docs/about-claude/models/overview: a configured model has its own output limit."""
    server = EmulatorServer(policy_book(), QUICK, models={"claude-tiny": {"context_window": 8000, "max_output_tokens": 100}})
    await server.start()
    try:
        async with anthropic.AsyncAnthropic(api_key="k", base_url=server.url, max_retries=0) as client:
            assert (await send(client, body(model="claude-tiny", max_tokens=100))).content
            with pytest.raises(anthropic.BadRequestError, match="max_tokens: 101 > 100"):
                await send(client, body(model="claude-tiny", max_tokens=101))
    finally:
        await server.stop()


def test_a_seeded_choice_is_the_same_for_the_same_request():
    """harnesses/emulator/parameters.py: the tool `any` forces, drawn by the request's own seed."""
    from harnesses.emulator.parameters import constrained

    tools = [READ_FILE, WRITE_FILE, {**READ_FILE, "name": "list_files"}]
    picks = {constrained([], {"type": "any"}, tools, random.Random(seed))[0]["name"] for seed in range(30)}
    assert picks == {"read_file", "write_file", "list_files"}
    assert constrained([], {"type": "any"}, tools, random.Random(4)) == constrained([], {"type": "any"}, tools, random.Random(4))
