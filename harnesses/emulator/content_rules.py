"""Rules on messages and their content blocks: shapes and types, text, images and documents, tool_use and
tool_result blocks and how they pair up, prefill.

What the API accepts stays accepted: consecutive messages of one role (the API combines them into one turn), a
first message from the assistant, a final assistant message (prefill, on models that take one), system messages
of text, images and documents.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from harnesses.emulator import schema
from harnesses.emulator.request_rules import REFERENCE, text_problem
from harnesses.emulator.rules import Request, invalid, rule, unknown_tag

TOOL_USE = "https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use"
VISION = "https://docs.claude.com/en/docs/build-with-claude/vision"
PDF = "https://docs.claude.com/en/docs/build-with-claude/pdf-support"
ROLES = ("user", "assistant", "system")  # anthropic.types.MessageParam
ASSISTANT_ONLY = ("tool_use", "server_tool_use", "thinking", "redacted_thinking")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]+")
_MAGIC = (("image/png", b"\x89PNG\r\n\x1a\n"), ("image/jpeg", b"\xff\xd8\xff"), ("image/gif", b"GIF87a"), ("image/gif", b"GIF89a"))


@rule("anthropic.types.MessageParam; " + REFERENCE + "#body-messages", loose=True)
def message_shape(request: Request) -> None:
    """Each message is an object with a role (user, assistant or system) and a content: a string or a list of blocks."""
    for i, message in enumerate(request.messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise invalid(f"messages.{i}.role: Input should be {_or(ROLES)}")
        if "content" not in message:
            raise invalid(f"messages.{i}.content: Field required")
        if not isinstance(message["content"], (str, list)):
            raise invalid(f"messages.{i}.content: Input should be a valid string or a list of content blocks")


@rule("anthropic.types.ContentBlockParam", loose=True)
def block_shape(request: Request) -> None:
    """Each content block is an object with a string `type`."""
    if None in request.kinds:
        raise invalid(f"{request.of_type(None)[0].path}: Input should be an object with a string `type`")


@rule("https://docs.claude.com/en/api/errors; " + REFERENCE + "#body-messages")
def non_empty_content(request: Request) -> None:
    """Every message has content, except a final assistant message."""
    last = len(request.messages) - 1
    for i, message in enumerate(request.messages):
        if not message["content"] and not (i == last and message["role"] == "assistant"):
            raise invalid(f"messages.{i}: all messages must have non-empty content except for the optional final assistant message")


@rule("anthropic.types.ContentBlockParam; anthropic.types.SystemMessageParam")
def block_types(request: Request) -> None:
    """A block's type is one the API defines (a beta request: the beta params'); a system message holds text blocks only."""
    known = schema.block_types(request.beta)
    unknown = next((kind for kind in request.kinds if kind not in known), None)
    if unknown is not None:
        block = request.of_type(unknown)[0]
        raise unknown_tag(f"{block.path}.type", unknown, known)
    for turn in request.turns:
        block = next((b for b in turn.blocks if b.kind != "text"), None) if turn.role == "system" else None
        if block is not None:
            raise invalid(f"{block.path}.type: Input should be 'text' (a system message holds text blocks)")


@rule(TOOL_USE)
def block_roles(request: Request) -> None:
    """tool_result blocks come from the user; tool_use, server_tool_use and thinking blocks from the assistant."""
    for kind, role in (("tool_result", "user"), *((kind, "assistant") for kind in ASSISTANT_ONLY)):
        block = next((b for b in request.of_type(kind) if b.role != role), None)
        if block is not None:
            raise invalid(f"{block.path}: `{kind}` blocks may only appear in `{role}` messages")


@rule("https://docs.claude.com/en/api/errors; anthropic.types.TextBlockParam")
def text_blocks(request: Request) -> None:
    """Text blocks, a tool result's included, hold text that is not empty nor only whitespace."""
    for _, text in _every(request, "text"):
        problem = text_problem(text)
        if problem:
            raise invalid(f"messages: {problem}")


@rule(VISION + "; anthropic.types.ImageBlockParam")
def image_blocks(request: Request) -> None:
    """An image's source is base64 (jpeg, png, gif or webp, the data being what media_type says), a url or a file."""
    for path, image in _every(request, "image"):
        _check_image(f"{path}.image.source", image.get("source"))


@rule(PDF + "; anthropic.types.DocumentBlockParam")
def document_blocks(request: Request) -> None:
    """A document's source is a base64 PDF, plain text, content blocks, a url or a file."""
    for path, document in _every(request, "document"):
        _check_document(f"{path}.document.source", document.get("source"))


@rule(TOOL_USE + "; anthropic.types.ToolUseBlockParam")
def tool_use_blocks(request: Request) -> None:
    """A tool_use block has an id (letters, digits, _ and -), a name and an input object."""
    for block in request.of_type("tool_use"):
        use = block.block
        if not (isinstance(use.get("id"), str) and TOOL_USE_ID.fullmatch(use["id"])):
            raise invalid(f"{block.path}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(use.get("name"), str):
            raise invalid(f"{block.path}.tool_use.name: Input should be a valid string")
        if not isinstance(use.get("input"), dict):
            raise invalid(f"{block.path}.tool_use.input: Input should be a valid dictionary")


@rule(TOOL_USE)
def unique_tool_use_ids(request: Request) -> None:
    """No two tool_use blocks of a request share an id."""
    seen: set[str] = set()
    for block in request.of_type("tool_use"):
        if block.block["id"] in seen:
            raise invalid(f"{block.path}: `tool_use` ids must be unique")
        seen.add(block.block["id"])


@rule(TOOL_USE + "; anthropic.types.ToolResultBlockParam")
def tool_result_blocks(request: Request) -> None:
    """A tool_result names its tool_use_id; its content is a string or blocks a tool result may hold."""
    for block in request.of_type("tool_result"):
        result = block.block
        if not isinstance(result.get("tool_use_id"), str):
            raise invalid(f"{block.path}.tool_result.tool_use_id: Input should be a valid string")
        content = result.get("content", "")
        if not isinstance(content, (str, list)):
            raise invalid(f"{block.path}.tool_result.content: Input should be a valid string or a list of content blocks")
        for j, part in enumerate(content if isinstance(content, list) else []):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in schema.TOOL_RESULT_CONTENT:
                raise unknown_tag(f"{block.path}.tool_result.content.{j}.type", kind, schema.TOOL_RESULT_CONTENT)
        if not isinstance(result.get("is_error", False), bool):
            raise invalid(f"{block.path}.tool_result.is_error: Input should be a valid boolean")


@rule(TOOL_USE)
def tool_uses_answered(request: Request) -> None:
    """Every tool_use is answered by a tool_result in the next message (the next turn)."""
    turns = request.turns
    for t, turn in enumerate(turns):
        uses = turn.uses
        if not uses:
            continue
        answered = {b.block["tool_use_id"] for b in turns[t + 1].results} if t + 1 < len(turns) else set()
        missing = [b for b in uses if b.block["id"] not in answered]
        if missing:
            raise invalid(f"messages.{missing[0].message}: `tool_use` ids were found without `tool_result` blocks "
                          f"immediately after: {', '.join(b.block['id'] for b in missing)}. Each `tool_use` block must "
                          "have a corresponding `tool_result` block in the next message.")


@rule(TOOL_USE)
def tool_results_first(request: Request) -> None:
    """In a message that answers tool uses, the tool_result blocks come first, before any other content."""
    for turn in request.turns:
        results = turn.results
        if results and results[-1] is not turn.blocks[len(results) - 1]:  # not all of them at the start
            late = [b for b in turn.blocks[len(results):] if b.kind == "tool_result"]
            raise invalid(f"messages.{late[0].message}: Did not find {len(late)} `tool_result` block(s) at the beginning "
                          "of this message. Messages following `tool_use` blocks must begin with a matching number of "
                          "`tool_result` blocks.")


@rule(TOOL_USE)
def tool_results_answer_uses(request: Request) -> None:
    """A tool_result answers a tool_use of the message just before it."""
    turns = request.turns
    for t, turn in enumerate(turns):
        results = turn.results
        if not results:
            continue
        asked = {b.block["id"] for b in turns[t - 1].uses} if t else set()
        stray = next((b for b in results if b.block["tool_use_id"] not in asked), None)
        if stray is not None:
            raise invalid(f"{stray.path}: unexpected `tool_use_id` found in `tool_result` blocks: {stray.block['tool_use_id']}. "
                          "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")


@rule("https://platform.claude.com/docs/en/about-claude/models/whats-new-claude-4-6; " + REFERENCE + "#body-messages")
def prefill_support(request: Request) -> None:
    """A final assistant message (prefill) only for models that take one."""
    if request.messages[-1]["role"] == "assistant" and not request.limits.prefill:
        raise invalid("This model does not support assistant message prefill. The conversation must end with a user message.")


@rule("https://docs.claude.com/en/api/errors; " + REFERENCE + "#body-messages")
def final_assistant_whitespace(request: Request) -> None:
    """A final assistant message (prefill) may not end with whitespace."""
    last = request.by_message[-1]
    if request.messages[-1]["role"] == "assistant" and last and last[-1].kind == "text":
        text = last[-1].block["text"]
        if text != text.rstrip():
            raise invalid("messages: final assistant content cannot end with trailing whitespace")


def _every(request: Request, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """The (path, block) of every block of type `kind`, those inside a tool_result's content too."""
    found = [(block.path, block.block) for block in request.of_type(kind)]
    for result in request.of_type("tool_result"):
        if isinstance(result.block.get("content"), list):
            found += [(f"{result.path}.content.{j}", part) for j, part in enumerate(result.block["content"]) if part["type"] == kind]
    return found


def _check_image(path: str, source: Any) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        media = source.get("media_type")
        if media not in IMAGE_TYPES:
            raise invalid(f"{path}.base64.media_type: Input should be {_or(IMAGE_TYPES)}")
        found = _sniff(f"{path}.base64.data", source.get("data"))
        if found is not None and found != media:
            raise invalid(f"{path}.base64.data: The image was specified using the {media} media type, "
                          f"but the image appears to be a {found} image")
    elif kind == "url":
        _check_url(f"{path}.url.url", source.get("url"))
    elif kind == "file":
        _check_file(f"{path}.file.file_id", source)
    else:
        raise unknown_tag(f"{path}.type", kind, ("base64", "url", "file"))


def _check_document(path: str, source: Any) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise invalid(f"{path}.base64.media_type: Input should be 'application/pdf'")
        if _decoded_head(f"{path}.base64.data", source.get("data"))[:5] != b"%PDF-":
            raise invalid(f"{path}.base64.data: The PDF specified was not valid.")
    elif kind == "text":
        if source.get("media_type") != "text/plain":
            raise invalid(f"{path}.text.media_type: Input should be 'text/plain'")
        if not isinstance(source.get("data"), str):
            raise invalid(f"{path}.text.data: Input should be a valid string")
    elif kind == "content":
        if not isinstance(source.get("content"), (str, list)):
            raise invalid(f"{path}.content.content: Input should be a valid string or a list of content blocks")
    elif kind == "url":
        _check_url(f"{path}.url.url", source.get("url"))
    elif kind == "file":
        _check_file(f"{path}.file.file_id", source)
    else:
        raise unknown_tag(f"{path}.type", kind, ("base64", "text", "content", "url", "file"))


def _sniff(path: str, data: Any) -> str | None:
    """The image type base64 `data` begins with (webp: RIFF....WEBP), or None if it is none of the four."""
    head = _decoded_head(path, data)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((media for media, magic in _MAGIC if head.startswith(magic)), None)


def _decoded_head(path: str, data: Any) -> bytes:
    """The first bytes of base64 `data` (only its head is decoded: an image may be megabytes)."""
    if not isinstance(data, str) or not data or len(data) % 4:
        raise invalid(f"{path}: invalid base64 data")
    try:
        return base64.b64decode(data[:24], validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{path}: invalid base64 data") from None


def _check_url(path: str, url: Any) -> None:
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise invalid(f"{path}: Input should be a valid URL, starting with http:// or https://")


def _check_file(path: str, source: dict[str, Any]) -> None:
    if not isinstance(source.get("file_id"), str):
        raise invalid(f"{path}: Input should be a valid string")


def _or(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"
