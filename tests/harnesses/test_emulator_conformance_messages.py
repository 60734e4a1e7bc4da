"""The emulator's rules on messages and content blocks, tool use pairing and prompt caching, through the SDK (the
helpers and the rule-coverage check are in test_emulator_conformance.py)."""
from __future__ import annotations

import base64

from tests.conftest import ARITHMETIC
from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import READ_FILE, body, rejected, send, tool_turn, user

api = conformance.api  # the SDK client fixture

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n").decode()


def image(data: str = PNG, media_type: str = "image/png") -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def asking(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": ARITHMETIC}]}]


async def test_message_shape(api):
    """anthropic.types.MessageParam: a role of user, assistant or system, and a content."""
    await rejected(api, "message_shape", "messages.0.role: Input should be 'user', 'assistant' or 'system'",
                   body(messages=[{"role": "robot", "content": "hi"}]))
    await rejected(api, "message_shape", "messages.0.content: Field required", body(messages=[{"role": "user"}]))
    await rejected(api, "message_shape", "messages.0.content: Input should be a valid string or a list",
                   body(messages=[{"role": "user", "content": 7}]))


async def test_block_shape(api):
    """anthropic.types.ContentBlockParam: a content block is an object with a type."""
    await rejected(api, "block_shape", "messages.0.content.1: Input should be an object",
                   body(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, "hello"]}]))


async def test_non_empty_content(api):
    """https://docs.claude.com/en/api/errors: every message has content but a final assistant one."""
    await rejected(api, "non_empty_content", "messages.1: all messages must have non-empty content except for the optional "
                   "final assistant message", body(messages=[*user("hi"), {"role": "assistant", "content": []}, *user("hi")]))
    await rejected(api, "non_empty_content", "messages.0: all messages", body(messages=[{"role": "user", "content": ""}]))
    assert (await send(api, body(messages=[*user(ARITHMETIC), {"role": "assistant", "content": ""}]))).content


async def test_block_types(api):
    """anthropic.types.ContentBlockParam: block types the API defines; a system message holds text."""
    await rejected(api, "block_types", "messages.0.content.0.type: Input tag 'video' found using 'type' does not match",
                   body(messages=asking({"type": "video", "url": "x"})))
    await rejected(api, "block_types", "messages.0.content.0.type: Input should be 'text'",
                   body(messages=[{"role": "system", "content": [image()]}, *user(ARITHMETIC)]))


async def test_block_roles(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: results from the user, uses from the
    assistant."""
    turn = tool_turn()
    await rejected(api, "block_roles", "messages.0.content.0: `tool_use` blocks may only appear in `assistant` messages",
                   body(tools=[READ_FILE], messages=[{"role": "user", "content": turn[1]["content"]}, *turn[2:]]))
    await rejected(api, "block_roles", "messages.1.content.1: `tool_result` blocks may only appear in `user` messages",
                   body(tools=[READ_FILE], messages=[turn[0], {"role": "assistant", "content": [*turn[1]["content"], *turn[2]["content"]]}]))


async def test_text_blocks(api):
    """https://docs.claude.com/en/api/errors: text blocks hold text (a tool result's too), not only whitespace."""
    await rejected(api, "text_blocks", "messages: text content blocks must be non-empty", body(messages=asking({"type": "text", "text": ""})))
    await rejected(api, "text_blocks", "messages: text content blocks must contain non-whitespace text",
                   body(messages=asking({"type": "text", "text": " \n "})))
    empty_inside = tool_turn(result={"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": ""}]})
    await rejected(api, "text_blocks", "text content blocks must be non-empty", body(tools=[READ_FILE], messages=empty_inside))


async def test_image_blocks(api):
    """https://docs.claude.com/en/docs/build-with-claude/vision: base64 jpeg/png/gif/webp of that type, a url or a file."""
    await rejected(api, "image_blocks", "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg'",
                   body(messages=asking(image(media_type="image/bmp"))))
    await rejected(api, "image_blocks", "The image was specified using the image/jpeg media type, but the image appears to be "
                   "a image/png image", body(messages=asking(image(media_type="image/jpeg"))))
    await rejected(api, "image_blocks", "image.source.base64.data: invalid base64 data", body(messages=asking(image(data="not base64!"))))
    await rejected(api, "image_blocks", "image.source.url.url: Input should be a valid URL",
                   body(messages=asking({"type": "image", "source": {"type": "url", "url": "ftp://x/y.png"}})))
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert (await send(api, body(messages=asking(image(), url)))).content[0].text == "391"


async def test_document_blocks(api):
    """https://docs.claude.com/en/docs/build-with-claude/pdf-support: a base64 PDF, plain text, content, url or file."""
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
    await rejected(api, "document_blocks", "document.source.base64.media_type: Input should be 'application/pdf'",
                   body(messages=asking({**pdf, "source": {**pdf["source"], "media_type": "application/zip"}})))
    await rejected(api, "document_blocks", "document.source.base64.data: The PDF specified was not valid.",
                   body(messages=asking({**pdf, "source": {**pdf["source"], "data": PNG}})))
    text = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Some notes."}, "title": "notes"}
    assert (await send(api, body(messages=asking(pdf, text)))).content[0].text == "391"


async def test_tool_use_blocks(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: an id, a name, an input object."""
    turn = tool_turn(use_id="toolu 1!")
    await rejected(api, "tool_use_blocks", "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
                   body(tools=[READ_FILE], messages=turn))
    turn = tool_turn()
    turn[1]["content"][0]["input"] = "a.txt"
    await rejected(api, "tool_use_blocks", "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
                   body(tools=[READ_FILE], messages=turn))


async def test_unique_tool_use_ids(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: tool_use ids are unique."""
    turn = tool_turn()
    turn[1]["content"].append(turn[1]["content"][0])
    await rejected(api, "unique_tool_use_ids", "messages.1.content.1: `tool_use` ids must be unique", body(tools=[READ_FILE], messages=turn))


async def test_tool_result_blocks(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: a tool_use_id, content a string or
    blocks a result may hold, is_error a boolean."""
    bad = tool_turn(result={"type": "tool_result", "tool_use_id": "toolu_1", "content": "x", "is_error": "yes"})
    await rejected(api, "tool_result_blocks", "messages.2.content.0.tool_result.is_error: Input should be a valid boolean",
                   body(tools=[READ_FILE], messages=bad))
    bad = tool_turn(result={"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "tool_use"}]})
    await rejected(api, "tool_result_blocks", "messages.2.content.0.tool_result.content.0.type: Input tag 'tool_use'",
                   body(tools=[READ_FILE], messages=bad))
    rich = tool_turn(result={"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "hello"}, image()]})
    assert (await send(api, body(tools=[READ_FILE], messages=rich))).content
    assert (await send(api, body(tools=[READ_FILE], messages=tool_turn(result={"type": "tool_result", "tool_use_id": "toolu_1"})))).content


async def test_tool_uses_answered(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: each tool_use has its tool_result in
    the next message."""
    unanswered = tool_turn()
    unanswered[2] = {"role": "user", "content": "never mind"}
    await rejected(api, "tool_uses_answered", "messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
                   "after: toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                   body(tools=[READ_FILE], messages=unanswered))
    await rejected(api, "tool_uses_answered", "messages.1: `tool_use` ids were found", body(tools=[READ_FILE], messages=tool_turn()[:2]))


async def test_tool_results_first(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: in the answering message, the
    tool_result blocks come before any text."""
    turn = tool_turn()
    turn[2]["content"].insert(0, {"type": "text", "text": "Here is the file:"})
    await rejected(api, "tool_results_first", "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message",
                   body(tools=[READ_FILE], messages=turn))
    assert (await send(api, body(tools=[READ_FILE], messages=tool_turn(after=[{"type": "text", "text": "Now answer."}])))).content


async def test_tool_results_answer_uses(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: a tool_result answers a tool_use of the
    previous message."""
    stray = tool_turn(after=[{"type": "tool_result", "tool_use_id": "toolu_other", "content": "?"}])
    await rejected(api, "tool_results_answer_uses", "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` "
                   "blocks: toolu_other. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                   body(tools=[READ_FILE], messages=stray))
    first = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]
    await rejected(api, "tool_results_answer_uses", "messages.0.content.0: unexpected `tool_use_id`", body(tools=[READ_FILE], messages=first))


async def test_tool_results_pair_up_across_combined_messages(api):
    """https://docs.claude.com/en/api/messages#body-messages: consecutive messages of one role are combined into one turn,
    so a tool use and its result may each span several messages."""
    turn = tool_turn()
    split = [turn[0], turn[1], {"role": "assistant", "content": "(reading)"}, turn[2], *user("and then?")]
    assert (await send(api, body(tools=[READ_FILE], messages=split))).content


async def test_prefill_support(api):
    """https://platform.claude.com/docs/en/about-claude/models/whats-new-claude-4-6: models from 4.6 take no prefill;
    others continue the final assistant message."""
    prefilled = [*user(ARITHMETIC), {"role": "assistant", "content": "The answer is"}]
    await rejected(api, "prefill_support", "This model does not support assistant message prefill. The conversation must end "
                   "with a user message.", body(model="claude-sonnet-4-6", messages=prefilled))
    assert (await send(api, body(messages=prefilled))).content


async def test_final_assistant_whitespace(api):
    """https://docs.claude.com/en/api/errors: a final assistant message does not end with whitespace."""
    await rejected(api, "final_assistant_whitespace", "messages: final assistant content cannot end with trailing whitespace",
                   body(messages=[*user(ARITHMETIC), {"role": "assistant", "content": "The answer is "}]))


async def test_the_shapes_the_api_accepts_stay_accepted(api):
    """https://docs.claude.com/en/api/messages#body-messages: consecutive same-role messages, a first assistant message,
    a system message, system as blocks, images, metadata."""
    accepted = [
        body(messages=[*user(ARITHMETIC), *user("Just the number, please.")]),
        body(messages=[{"role": "assistant", "content": "How can I help?"}, *user(ARITHMETIC)]),
        body(messages=[{"role": "system", "content": "Be terse."}, *user(ARITHMETIC)]),
        body(system=[{"type": "text", "text": "Be terse."}], metadata={"user_id": "u-1"}, messages=asking(image())),
    ]
    for request in accepted:
        assert (await send(api, request)).content[0].text == "391", request


# -- prompt caching --------------------------------------------------------------------------------


def marked(text: str, **cache: str) -> dict:
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral", **cache}}


async def test_cache_control_values(api):
    """https://docs.claude.com/en/docs/build-with-claude/prompt-caching: cache_control is ephemeral, ttl '5m' or '1h'."""
    await rejected(api, "cache_control_values", "messages.0.content.0.cache_control.type: Input should be 'ephemeral'",
                   body(messages=asking({"type": "text", "text": "x", "cache_control": {"type": "persistent"}})))
    await rejected(api, "cache_control_values", "messages.0.content.0.cache_control.ephemeral.ttl: Input should be '5m' or '1h'",
                   body(messages=asking(marked("x", ttl="10m"))))
    await rejected(api, "cache_control_values", "cache_control.type", body(cache_control={"type": "forever"}))
    assert (await send(api, body(messages=asking(marked("x", ttl="1h")), cache_control={"type": "ephemeral"}))).content


async def test_cache_breakpoints_at_most_four(api):
    """https://docs.claude.com/en/docs/build-with-claude/prompt-caching: at most four breakpoints in a request."""
    tool = {**READ_FILE, "cache_control": {"type": "ephemeral"}}
    four = dict(tools=[tool], system=[marked("Be terse.")], messages=asking(marked("a"), marked("b")))
    assert (await send(api, body(**four))).content
    await rejected(api, "cache_breakpoints_at_most_four", "A maximum of 4 blocks with cache_control may be provided. Found 5.",
                   body(**four, cache_control={"type": "ephemeral"}))


async def test_cache_ttl_order(api):
    """https://docs.claude.com/en/docs/build-with-claude/prompt-caching#mixing-different-ttls: 1h breakpoints before 5m."""
    await rejected(api, "cache_ttl_order", "messages.0.content.1.cache_control.ttl: a cache_control with ttl '1h' must come "
                   "before any with ttl '5m'", body(system=[marked("Be terse.")], messages=asking(marked("a"), marked("b", ttl="1h"))))
    assert (await send(api, body(system=[marked("Be terse.", ttl="1h")], messages=asking(marked("a"))))).content
