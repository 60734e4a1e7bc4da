"""The emulator, driven by the official anthropic SDK the ways users drive the real API."""
from __future__ import annotations

import asyncio
import json
import threading
import warnings

import anthropic
import pytest

from experiments.tasks import policy_book
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import FaultProfile, LatencyProfile, PromptCache
from tests.conftest import ARITHMETIC, GREETING, QUICK

@pytest.fixture
def threaded_emulator():
    """For the synchronous client, which blocks its thread: the server runs in a loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = EmulatorServer(policy_book(), QUICK)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def client(server) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="emulator", base_url=server.url, max_retries=0)


@pytest.fixture
async def api(emulator):
    async with client(emulator) as opened:
        yield opened


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_create_without_streaming(api):
    message = await api.messages.create(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC))
    assert (message.content[0].text, message.stop_reason, message.role) == ("391", "end_turn", "assistant")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message._request_id.startswith("req_emu_")


async def test_create_streaming_yields_every_event_kind(api):
    stream = await api.messages.create(model="claude-emulated", max_tokens=64, messages=user(GREETING), stream=True)
    kinds, partial = [], ""
    async for event in stream:
        kinds.append(event.type)
        if event.type == "content_block_delta":
            partial += event.delta.partial_json
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)
    assert json.loads(partial) == {"path": "hello.txt", "content": "hello, harnesslab\n"}


async def test_stream_helper_and_a_tool_use_round_trip(api):
    tools = [{"name": "write_file", "description": "write", "input_schema": {"type": "object"}}]
    async with api.messages.stream(model="claude-emulated", max_tokens=64, messages=user(GREETING), tools=tools) as stream:
        first = await stream.get_final_message()
    [use] = first.content
    assert (first.stop_reason, use.type, use.name) == ("tool_use", "tool_use", "write_file")
    followup = user(GREETING) + [
        {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "wrote 18 bytes"}]},
    ]
    async with api.messages.stream(model="claude-emulated", max_tokens=64, messages=followup, tools=tools) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.content[0].text == "Created hello.txt."


async def test_count_tokens_matches_what_usage_reports(api):
    counted = await api.messages.count_tokens(model="claude-emulated", messages=user(ARITHMETIC))
    message = await api.messages.create(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC))
    assert counted.input_tokens == message.usage.input_tokens


def test_the_synchronous_client(threaded_emulator):
    with anthropic.Anthropic(api_key="emulator", base_url=threaded_emulator.url, max_retries=0) as api, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert api.messages.create(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC)).content[0].text == "391"
        with api.messages.stream(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC)) as stream:
            assert "".join(stream.text_stream) == "391"
        assert api.messages.count_tokens(model="claude-emulated", messages=user(ARITHMETIC)).input_tokens > 0
    assert not [f"{w.filename}: {w.message}" for w in caught], "the SDK warned"


@pytest.mark.parametrize(
    "request_options, status, kind, message",
    [
        ({"model": "claude-emulated", "max_tokens": -1, "messages": user("x")}, 400, "invalid_request_error", "max_tokens: Input should be"),
        ({"model": "claude-emulated", "max_tokens": 9, "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_request_error", "messages.0.role"),
        ({"model": "m", "max_tokens": 9, "messages": user("x")}, 404, "not_found_error", "model: m"),
    ],
)
async def test_bad_requests_get_the_apis_error_shape(api, request_options, status, kind, message):
    """Every rule has its own test in test_emulator_conformance*.py; these check the error's shape, as the SDK sees it."""
    with pytest.raises(anthropic.APIStatusError) as caught:
        await api.messages.create(**request_options)
    assert caught.value.status_code == status and caught.value.body == {"type": "error", "error": {"type": kind, "message": caught.value.body["error"]["message"]}}
    assert message in caught.value.body["error"]["message"]


async def test_missing_key_and_unknown_paths(emulator):
    import httpx2

    async with httpx2.AsyncClient(base_url=emulator.url) as http:
        unauthenticated = await http.post("/v1/messages", json={"model": "m", "max_tokens": 1, "messages": user("x")})
        missing = await http.post("/v1/nothing", headers={"x-api-key": "k"}, json={})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["type"] == "authentication_error"
    assert missing.status_code == 404 and missing.json() == {"type": "error", "error": {"type": "not_found_error", "message": "/v1/nothing: not found"}}


@pytest.mark.parametrize("kind, status, error", [("rate_limit", 429, anthropic.RateLimitError),
                                                  ("overloaded", 529, anthropic.APIStatusError),
                                                  ("server_error", 500, anthropic.InternalServerError)])
async def test_faults_use_the_apis_status_codes(kind, status, error):
    server = EmulatorServer(policy_book(), QUICK, FaultProfile(**{kind: 1.0}, retry_after_s=0.25))
    await server.start()
    try:
        with pytest.raises(error) as caught:
            async with client(server) as api:
                await api.messages.create(model="claude-emulated", max_tokens=9, messages=user(ARITHMETIC))
        assert caught.value.status_code == status
        if status == 429:
            assert caught.value.response.headers["retry-after"] == "0.25"
    finally:
        await server.stop()


async def test_a_disconnect_cuts_the_stream_before_message_stop():
    server = EmulatorServer(policy_book(), QUICK, FaultProfile(disconnect=1.0))
    await server.start()
    kinds = []
    try:
        with pytest.raises(Exception) as caught:
            async with client(server) as api:
                stream = await api.messages.create(model="claude-emulated", max_tokens=64, messages=user(GREETING), stream=True)
                async for event in stream:
                    kinds.append(event.type)
        assert "message_stop" not in kinds and "content_block_delta" in kinds, (kinds, caught.value)
    finally:
        await server.stop()


def test_fault_rates_are_validated():
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultProfile(rate_limit=0.7, overloaded=0.7)


def test_prompt_cache_reads_the_prefix_an_earlier_call_wrote():
    cache = PromptCache(min_tokens=10)
    big = "x" * 400
    first = {"messages": [{"role": "user", "content": [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]}]}
    grown = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": big}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}]},
    ]}
    written = cache.usage(first)
    assert written["cache_creation_input_tokens"] > 0 and written["cache_read_input_tokens"] == 0
    again = cache.usage(grown)
    assert again["cache_read_input_tokens"] == written["cache_creation_input_tokens"]
    assert again["cache_creation_input_tokens"] > 0  # the new tail up to the new breakpoint
    assert PromptCache(min_tokens=10_000).usage(first)["cache_creation_input_tokens"] == 0  # too short to cache


def test_latency_is_seeded_by_the_request_and_jittered():
    profile = LatencyProfile(base_ttft_ms=100, jitter_sigma=0.3, seed=1)
    draws = [profile.ttft_ms(1000, 0, profile.rng_for({"n": i})) for i in range(200)]
    assert draws[:5] == [profile.ttft_ms(1000, 0, profile.rng_for({"n": i})) for i in range(5)]
    ordered = sorted(draws)
    assert ordered[100] < ordered[190] and 80 < ordered[100] < 130  # p95 differs from p50 around 104 ms
    assert LatencyProfile(base_ttft_ms=100, prefill_ms_per_1k_tokens=10, jitter_sigma=0).ttft_ms(2000, 0, None) == 120
