"""The emulator is the Messages API, rule for rule (issue 21): request-level rules here (headers, fields, the model
and its limits, sampling, stop_sequences, metadata, service_tier, stream, system, thinking); messages and content
blocks in test_emulator_conformance_messages.py, tools in ..._tools.py, parameters honoured in ..._parameters.py.

Every test drives the official SDK client over HTTP against the emulator server, and names its source in its
docstring. A refused request must raise the SDK's exception class for the status, with the API's `error.type`, a
message naming the field, and the emulator's `x-emulator-rule` header naming the rule; what the API accepts must be
accepted. Each rule of harnesses/emulator/validation.py has a test named after it (test_every_rule_has_a_test).
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import anthropic
import pytest

from harnesses.emulator.signatures import sign
from harnesses.emulator.validation import RULES
from tests.conftest import ARITHMETIC

MODEL = "claude-emulated"
READ_FILE = {"name": "read_file", "description": "Read a file", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
WRITE_FILE = {"name": "write_file", "description": "Write a file", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"]}}
CONFORMANCE = ("", "_messages", "_tools", "_windows", "_context")  # the modules holding the rules' tests: tests.harnesses.test_emulator_conformance*


def body(**fields: Any) -> dict[str, Any]:
    """A valid request with `fields` changed; a field set to DROP is left out."""
    made = {"model": MODEL, "max_tokens": 64, "messages": user(ARITHMETIC), **fields}
    return {key: value for key, value in made.items() if value is not DROP}


DROP = object()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def tool_turn(use_id: str = "toolu_1", result: dict[str, Any] | None = None, after: list | None = None) -> list[dict[str, Any]]:
    """A task, the assistant's tool use and the user's message answering it (`result`, then `after`)."""
    answer = result or {"type": "tool_result", "tool_use_id": use_id, "content": "hello"}
    return [{"role": "user", "content": "Read a.txt"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": "read_file", "input": {"path": "a.txt"}}]},
            {"role": "user", "content": [answer, *(after or [])]}]


async def send(api: anthropic.AsyncAnthropic, request: dict[str, Any], headers: dict[str, Any] | None = None,
               stream: bool = False) -> Any:
    """POST /v1/messages through the SDK: messages.create with the fields it types (the rest as extra_body), or its
    plain post when a required field is missing. Streamed, the events are collected (an error comes before them)."""
    typed = set(inspect.signature(api.messages.create).parameters) - {"extra_body", "extra_headers", "extra_query", "timeout"}
    if not {"model", "max_tokens", "messages"} <= set(request):
        return await api.post("/v1/messages", body=request, cast_to=anthropic.types.Message, options={"headers": headers or {}})
    fields = {k: v for k, v in request.items() if k in typed}
    extra = {k: v for k, v in request.items() if k not in typed}
    options = {"extra_body": extra or None, "extra_headers": headers, "timeout": 30}  # a timeout: no check of max_tokens
    if stream:
        return [event async for event in await api.messages.create(**fields, stream=True, **options)]
    return await api.messages.create(**fields, **options)


async def rejected(api: anthropic.AsyncAnthropic, rule: str, fragment: str, request: dict[str, Any],
                   error: type = anthropic.BadRequestError, kind: str = "invalid_request_error",
                   headers: dict[str, Any] | None = None) -> str:
    """Send `request`; the SDK must raise `error` with `kind`, a message holding `fragment`, from `rule`."""
    with pytest.raises(error) as caught:
        await send(api, request, headers)
    found = caught.value
    assert found.body["error"]["type"] == kind, found.body
    assert found.response.headers.get("x-emulator-rule") == rule, (found.response.headers.get("x-emulator-rule"), found.body)
    assert fragment in found.body["error"]["message"], found.body
    return found.body["error"]["message"]


@pytest.fixture
async def api(emulator):
    async with anthropic.AsyncAnthropic(api_key="emulator", base_url=emulator.url, max_retries=0) as opened:
        yield opened


def test_every_rule_has_a_test_naming_its_source():
    """harnesses/emulator/validation.py: every rule is tested by a test named after it, whose docstring names the
    rule's source; every rule's source names a page or an SDK type; docs/emulator.md lists every rule."""
    docs = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()
    tests = {name: test for suffix in CONFORMANCE
             for name, test in vars(importlib.import_module(f"tests.harnesses.test_emulator_conformance{suffix}")).items()
             if name.startswith("test_") and callable(test)}
    for checked in RULES:
        assert checked.source.startswith(("https://", "anthropic.types")), checked
        named = [test for name, test in tests.items() if name.startswith(f"test_{checked.name}")]
        assert named, f"no test_{checked.name}* in tests/harnesses/test_emulator_conformance*.py"
        first_source = checked.source.split(";")[0].split("#")[0].strip()
        assert all(first_source in (test.__doc__ or "") for test in named), (checked.name, first_source)
        assert f"| `{checked.name}` |" in docs, f"docs/emulator.md does not list {checked.name}"


# -- headers ---------------------------------------------------------------------------------------


async def test_api_version_is_required_and_known(api):
    """https://docs.claude.com/en/api/versioning: the anthropic-version header is required."""
    await rejected(api, "api_version", "anthropic-version: header is required", body(), headers={"anthropic-version": anthropic.omit})
    await rejected(api, "api_version", "'1999-01-01' is not a valid version", body(), headers={"anthropic-version": "1999-01-01"})
    assert (await send(api, body(), headers={"anthropic-version": "2023-06-01"})).stop_reason == "end_turn"


async def test_beta_header_names_known_betas(api):
    """https://docs.claude.com/en/api/beta-headers: an unknown beta is refused, naming it; a known one is accepted."""
    await rejected(api, "beta_header", "Unexpected value(s) `no-such-beta-2020-01-01` for the `anthropic-beta` header",
                   body(), headers={"anthropic-beta": "prompt-caching-2024-07-31,no-such-beta-2020-01-01"})
    assert (await send(api, body(), headers={"anthropic-beta": "prompt-caching-2024-07-31"})).content


# -- fields ----------------------------------------------------------------------------------------


async def test_known_fields_only(api):
    """anthropic.types.message_create_params.MessageCreateParams: a field the API does not define is refused."""
    await rejected(api, "known_fields", "temprature: Extra inputs are not permitted", body(temprature=0.5))


async def test_model_field_is_required(api):
    """https://docs.claude.com/en/api/messages: `model` is required, a string."""
    await rejected(api, "model_field", "model: Field required", body(model=DROP))
    await rejected(api, "model_field", "model: Input should be a valid string", body(model=7))


async def test_known_model_or_404(api):
    """https://docs.claude.com/en/api/errors: an unknown model is a 404 not_found_error naming it (count_tokens too)."""
    await rejected(api, "known_model", "model: claude-nonexistent-9", body(model="claude-nonexistent-9"),
                   error=anthropic.NotFoundError, kind="not_found_error")
    with pytest.raises(anthropic.NotFoundError):
        await api.messages.count_tokens(model="claude-nonexistent-9", messages=user("hi"))
    for known in ("claude-sonnet-4-6", "claude-haiku-4-5-20251001", MODEL):
        assert (await send(api, body(model=known))).model == known


async def test_max_tokens_field(api):
    """https://docs.claude.com/en/api/messages: max_tokens is required, a whole number >= 0."""
    await rejected(api, "max_tokens_field", "max_tokens: Field required", body(max_tokens=DROP))
    await rejected(api, "max_tokens_field", "max_tokens: Input should be a valid integer", body(max_tokens="64"))
    await rejected(api, "max_tokens_field", "max_tokens: Input should be greater than or equal to 0", body(max_tokens=-1))


async def test_max_tokens_limit_is_the_models(api):
    """https://docs.claude.com/en/docs/about-claude/models/overview: max_tokens within the model's output limit."""
    await rejected(api, "max_tokens_limit", "max_tokens: 64001 > 64000, which is the maximum allowed number of output "
                   f"tokens for {MODEL}", body(max_tokens=64_001))
    assert (await send(api, body(model="claude-opus-4-6", max_tokens=128_000))).stop_reason == "end_turn"


async def test_messages_field(api):
    """https://docs.claude.com/en/api/messages: messages is required, a list of at least one message."""
    await rejected(api, "messages_field", "messages: Field required", body(messages=DROP))
    await rejected(api, "messages_field", "messages: at least one message is required", body(messages=[]))
    await rejected(api, "messages_field", "messages: Input should be a valid list", body(messages="hi"))


async def test_sampling_ranges(api):
    """https://docs.claude.com/en/api/messages: temperature and top_p from 0 to 1, top_k >= 0."""
    await rejected(api, "sampling_ranges", "temperature: range: 0..1", body(temperature=1.5))
    await rejected(api, "sampling_ranges", "top_p: range: 0..1", body(top_p=-0.1))
    await rejected(api, "sampling_ranges", "top_k: Input should be a whole number", body(top_k=-1))
    assert (await send(api, body(temperature=0.0, top_k=5))).content


async def test_temperature_or_top_p(api):
    """https://docs.claude.com/en/api/messages#body-top-p: temperature or top_p, not both."""
    await rejected(api, "temperature_or_top_p", "`temperature` and `top_p` cannot both be specified for this model",
                   body(temperature=0.5, top_p=0.9))
    assert (await send(api, body(top_p=0.9))).content


async def test_stop_sequences_field(api):
    """https://docs.claude.com/en/api/messages: stop_sequences is a list of strings."""
    await rejected(api, "stop_sequences_field", "stop_sequences: Input should be a valid list", body(stop_sequences="END"))
    await rejected(api, "stop_sequences_field", "stop_sequences.1: Input should be a valid string", body(stop_sequences=["END", 3]))


async def test_metadata_field(api):
    """anthropic.types.metadata_param.MetadataParam: metadata holds user_id (a string of at most 256) and nothing else."""
    await rejected(api, "metadata_field", "metadata.user: Extra inputs are not permitted", body(metadata={"user": "u"}))
    await rejected(api, "metadata_field", "metadata.user_id: Input should be a valid string", body(metadata={"user_id": 7}))
    await rejected(api, "metadata_field", "at most 256 characters", body(metadata={"user_id": "u" * 257}))
    assert (await send(api, body(metadata={"user_id": "user-1234"}))).content
    assert (await send(api, body(metadata={}))).content


async def test_service_tier_field(api):
    """anthropic.types.message_create_params.MessageCreateParams.service_tier: 'auto' or 'standard_only'; usage
    says the tier that served it."""
    await rejected(api, "service_tier_field", "service_tier: Input should be 'auto' or 'standard_only'", body(service_tier="priority"))
    for tier in ("auto", "standard_only"):
        assert (await send(api, body(service_tier=tier))).usage.service_tier == "standard"


async def test_stream_field(api):
    """https://docs.claude.com/en/api/messages: stream is a boolean."""
    await rejected(api, "stream_field", "stream: Input should be a valid boolean", body(stream="yes"))


async def test_system_field(api):
    """anthropic.types.message_create_params.MessageCreateParams.system: a string or text blocks, with text in them."""
    await rejected(api, "system_field", "system: text content blocks must be non-empty", body(system=[{"type": "text", "text": ""}]))
    await rejected(api, "system_field", "system.0.type: Input should be 'text'", body(system=[{"type": "image", "text": "x"}]))
    await rejected(api, "system_field", "system: Input should be a valid string or a list", body(system=5))
    blocks = [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer with a number.", "cache_control": {"type": "ephemeral"}}]
    assert (await send(api, body(system=blocks))).content[0].text == "391"


# -- thinking --------------------------------------------------------------------------------------


async def test_thinking_config(api):
    """anthropic.types.ThinkingConfigParam: a known type; enabled takes budget_tokens >= 1024."""
    await rejected(api, "thinking_config", "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                   body(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 512}))
    await rejected(api, "thinking_config", "thinking.type: Input tag 'sometimes'", body(thinking={"type": "sometimes"}))
    await rejected(api, "thinking_config", "thinking.adaptive.display: Input should be 'summarized' or 'omitted'",
                   body(thinking={"type": "adaptive", "display": "full"}))
    for config in ({"type": "disabled"}, {"type": "adaptive"}, {"type": "enabled", "budget_tokens": 1024}):
        assert (await send(api, body(max_tokens=2048, thinking=config))).content


async def test_thinking_budget_below_max_tokens(api):
    """https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"""
    await rejected(api, "thinking_budget_below_max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`",
                   body(max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 1024}))


async def test_thinking_sampling(api):
    """https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility: with thinking, only
    temperature 1, no top_k, top_p from 0.95."""
    thinking = {"type": "enabled", "budget_tokens": 1024}
    await rejected(api, "thinking_sampling", "`temperature` may only be set to 1 when thinking is enabled",
                   body(max_tokens=2048, thinking=thinking, temperature=0.5))
    await rejected(api, "thinking_sampling", "`top_k` may not be set", body(max_tokens=2048, thinking=thinking, top_k=5))
    await rejected(api, "thinking_sampling", "`top_p` must be between 0.95 and 1", body(max_tokens=2048, thinking=thinking, top_p=0.5))
    assert (await send(api, body(max_tokens=2048, thinking=thinking, temperature=1))).content


async def test_thinking_tool_choice(api):
    """https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility: no forced tool use."""
    await rejected(api, "thinking_tool_choice", "Thinking may not be enabled when tool_choice forces tool use.",
                   body(max_tokens=2048, thinking={"type": "adaptive"}, tools=[READ_FILE], tool_choice={"type": "any"}))


async def test_thinking_blocks_genuine(api):
    """https://docs.claude.com/en/docs/build-with-claude/extended-thinking#preserving-thinking-blocks: a thinking block
    comes back exactly as the API wrote it (its signature says so)."""
    def history(thinking: str, signature: str) -> list[dict[str, Any]]:
        return [*user("What is 2+2?"), {"role": "assistant", "content": [
            {"type": "thinking", "thinking": thinking, "signature": signature}, {"type": "text", "text": "4"}]}, *user(ARITHMETIC)]

    await rejected(api, "thinking_blocks_genuine", "messages.1.content.0: Invalid `signature` in `thinking` block",
                   body(messages=history("I changed this.", sign("Two and two."))))
    assert (await send(api, body(messages=history("Two and two.", sign("Two and two."))))).content


async def test_thinking_on_tool_turn(api):
    """https://docs.claude.com/en/docs/build-with-claude/extended-thinking#extended-thinking-with-tool-use: with
    thinking on, the assistant turn whose tool use the request answers starts with its thinking block."""
    thinking = {"type": "enabled", "budget_tokens": 1024}
    await rejected(api, "thinking_on_tool_turn", "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, "
                   "but found `tool_use`", body(max_tokens=2048, thinking=thinking, tools=[READ_FILE], messages=tool_turn()))
    signed = tool_turn()
    signed[1]["content"].insert(0, {"type": "thinking", "thinking": "Read it.", "signature": sign("Read it.")})
    assert (await send(api, body(max_tokens=2048, thinking=thinking, tools=[READ_FILE], messages=signed))).content
    assert (await send(api, body(tools=[READ_FILE], messages=tool_turn()))).content  # thinking off: no such need
