"""count_tokens agrees with usage (issue 21, item 5): for every request shape, POST /v1/messages/count_tokens says as
many input tokens as POST /v1/messages then bills (usage's input_tokens + cache_creation_input_tokens +
cache_read_input_tokens, as the API splits them), both through the official SDK over HTTP.

Source: https://docs.claude.com/en/docs/build-with-claude/token-counting ("the token count is an estimate" of what a
message with the same input costs; the emulator's count is exact, one estimate for both endpoints).
"""
from __future__ import annotations

from typing import Any

import anthropic
import pytest

from harnesses.emulator.signatures import sign
from tests.conftest import ARITHMETIC
from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import MODEL, READ_FILE, WRITE_FILE, send, tool_turn, user
from tests.harnesses.test_emulator_conformance_messages import PDF, asking, image

api = conformance.api  # the SDK client fixture

LONG = "The repository's conventions, stated once and cached. " * 120  # over the 1,024 tokens a cached prefix needs
THINKING = {"type": "enabled", "budget_tokens": 1024}
EPHEMERAL = {"type": "ephemeral"}


def thought_through(use_tools: bool) -> list[dict[str, Any]]:
    """A history whose assistant turn starts with a signed thinking block: a tool turn, or a plain answer."""
    if use_tools:
        turn = tool_turn()
        turn[1]["content"].insert(0, {"type": "thinking", "thinking": "Read it.", "signature": sign("Read it.")})
        return turn
    return [*user("What is 2+2?"), {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Two and two.", "signature": sign("Two and two.")}, {"type": "text", "text": "4"}]},
        *user(ARITHMETIC)]


SHAPES: dict[str, dict[str, Any]] = {
    "text": {"messages": user(ARITHMETIC)},
    "tools": {"messages": user("Read a.txt"), "tools": [READ_FILE, WRITE_FILE], "tool_choice": {"type": "auto"}},
    "tool_turn": {"messages": tool_turn(), "tools": [READ_FILE]},
    "tool_result_blocks": {"messages": tool_turn(result={"type": "tool_result", "tool_use_id": "toolu_1", "content": [
        {"type": "text", "text": "hello"}, image()]}), "tools": [READ_FILE]},
    "system_string": {"messages": user(ARITHMETIC), "system": "You are terse."},
    "system_blocks": {"messages": user(ARITHMETIC), "system": [{"type": "text", "text": "You are terse."},
                                                                {"type": "text", "text": "Answer with digits."}]},
    "image": {"messages": asking(image())},
    "document_pdf": {"messages": asking({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}})},
    "document_text": {"messages": asking({"type": "document", "title": "notes", "source": {
        "type": "text", "media_type": "text/plain", "data": "The answer is 391."}})},
    "image_url": {"messages": asking({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}})},
    "thinking_config": {"messages": user(ARITHMETIC), "thinking": THINKING},
    "thinking_blocks": {"messages": thought_through(use_tools=False), "thinking": THINKING},
    "thinking_tool_turn": {"messages": thought_through(use_tools=True), "thinking": THINKING, "tools": [READ_FILE]},
    "cache_breakpoints": {"messages": [{"role": "user", "content": [{"type": "text", "text": ARITHMETIC, "cache_control": EPHEMERAL}]}],
                          "system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                          "tools": [{**READ_FILE, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
    "prefill": {"messages": [*user(ARITHMETIC), {"role": "assistant", "content": "The answer is"}]},
}


async def counted(api: anthropic.AsyncAnthropic, shape: dict[str, Any]) -> int:
    return (await api.messages.count_tokens(model=MODEL, **shape)).input_tokens


def billed(message: anthropic.types.Message) -> int:
    usage = message.usage
    return usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_count_tokens_says_what_usage_bills(api, name):
    """https://docs.claude.com/en/docs/build-with-claude/token-counting: the same input, the same count."""
    shape = SHAPES[name]
    tokens = await counted(api, shape)
    assert tokens == billed(await send(api, {"model": MODEL, "max_tokens": 2048, **shape}))
    assert tokens > await counted(api, {"messages": user("x")})  # what the shape adds is counted, not left out of both


async def test_count_tokens_agrees_when_usage_reads_the_cache(api):
    """https://docs.claude.com/en/docs/build-with-claude/prompt-caching: the first request writes the cached prefix and
    the second reads it; usage splits the input differently each time, and adds up to the count both times."""
    shape = SHAPES["cache_breakpoints"]
    tokens = await counted(api, shape)
    first, second = [await send(api, {"model": MODEL, "max_tokens": 64, **shape}) for _ in range(2)]
    assert first.usage.cache_creation_input_tokens > 0 and second.usage.cache_read_input_tokens > 0
    assert billed(first) == billed(second) == tokens
    assert tokens > await counted(api, {**shape, "system": "short"})


async def test_thinking_of_earlier_turns_is_not_input(api):
    """https://docs.claude.com/en/docs/build-with-claude/context-windows ("The context window with extended thinking"):
    the API strips the thinking blocks of earlier turns from the input, whether passed back or not; in a tool-use loop
    the turn's own thinking is passed back and counted."""
    earlier = thought_through(use_tools=False)  # a turn that ended, then a new user message
    without = [earlier[0], {**earlier[1], "content": earlier[1]["content"][1:]}, earlier[2]]
    assert await counted(api, {"messages": earlier, "thinking": THINKING}) == await counted(api, {"messages": without, "thinking": THINKING})
    loop = thought_through(use_tools=True)  # the thinking block starts the tool turn the last message answers
    after = [*loop, {"role": "assistant", "content": [{"type": "text", "text": "It says hello."}]}, *user(ARITHMETIC)]
    stripped = [*after[:1], {**after[1], "content": after[1]["content"][1:]}, *after[2:]]
    tokens = {name: await counted(api, {"messages": messages, "tools": [READ_FILE]})
              for name, messages in (("after", after), ("stripped", stripped))}
    assert tokens["after"] == tokens["stripped"]  # the loop is over: its thinking is an earlier turn's now
    loop_without = [loop[0], {**loop[1], "content": loop[1]["content"][1:]}, loop[2]]
    assert await counted(api, {"messages": loop, "tools": [READ_FILE]}) > await counted(api, {"messages": loop_without, "tools": [READ_FILE]})
