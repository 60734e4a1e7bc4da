"""The request vocabulary as the official SDK's own types define it (anthropic.types), read when first needed.

The SDK is the schema: the fields a request may have, the content block types, the server tools and their fixed
names, the beta names. A beta request (`POST /v1/messages?beta=true`, or one with an `anthropic-beta` header: what
`client.beta.messages.create` sends) is read by the beta params' types (anthropic.types.beta), which add fields
(`context_management`), blocks (`compaction`) and tools; every other request by anthropic.types'. The one addition is the sampling parameters the Messages API reference documents
(https://docs.claude.com/en/api/messages: temperature, top_p, top_k), which this SDK version no longer types
(send them with `extra_body`).
"""
from __future__ import annotations

import functools
import typing
from typing import Any

SAMPLING = ("temperature", "top_p", "top_k")
DOCUMENTED_VERSIONS = ("2023-06-01", "2023-01-01")  # https://docs.claude.com/en/api/versioning
# What a tool_result's content list may hold (anthropic.types.tool_result_block_param.Content)
TOOL_RESULT_CONTENT = ("text", "image", "search_result", "document", "tool_reference", "browser_state")


def literals(hint: Any) -> tuple[Any, ...]:
    """The values of a Literal, under any Required / Optional / Union around it."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    return tuple(value for arg in typing.get_args(hint) for value in literals(arg))


@functools.cache
def api_versions() -> tuple[str, ...]:
    """The anthropic-version values: the documented ones, and the one this SDK sends."""
    from anthropic._constants import ANTHROPIC_API_VERSION

    return tuple(dict.fromkeys((*DOCUMENTED_VERSIONS, ANTHROPIC_API_VERSION)))


@functools.cache
def request_fields(endpoint: str, beta: bool = False) -> frozenset[str]:
    """The top-level fields of a POST /v1/messages (or /v1/messages/count_tokens) body; `beta`: of a beta request."""
    if beta:
        from anthropic.types.beta.message_count_tokens_params import MessageCountTokensParams
        from anthropic.types.beta.message_create_params import MessageCreateParamsStreaming
    else:
        from anthropic.types.message_count_tokens_params import MessageCountTokensParams
        from anthropic.types.message_create_params import MessageCreateParamsStreaming

    params = MessageCreateParamsStreaming if endpoint == "messages" else MessageCountTokensParams
    extra = SAMPLING if endpoint == "messages" else ()
    return frozenset(params.__required_keys__ | params.__optional_keys__ | set(extra)) - {"betas"}  # betas: a header


@functools.cache
def block_types(beta: bool = False) -> tuple[str, ...]:
    """The `type` of every content block a message may hold (anthropic.types.ContentBlockParam, or the beta one)."""
    if beta:
        from anthropic.types.beta import BetaContentBlockParam as ContentBlockParam
    else:
        from anthropic.types import ContentBlockParam

    return tuple(dict.fromkeys(t for block in typing.get_args(ContentBlockParam) if _is_typed(block)
                               for t in literals(typing.get_type_hints(block)["type"])))


@functools.cache
def server_tools(beta: bool = False) -> dict[str, str | None]:
    """Each server tool's `type` and the one `name` it must have (None: no name field), from anthropic.types.ToolUnionParam
    (or the beta one)."""
    if beta:
        from anthropic.types.beta import BetaToolUnionParam as ToolUnionParam
    else:
        from anthropic.types import ToolUnionParam

    tools: dict[str, str | None] = {}
    for tool in typing.get_args(ToolUnionParam):
        hints = typing.get_type_hints(tool)
        names = literals(hints.get("name"))
        for kind in literals(hints["type"]):
            if kind != "custom":
                tools[kind] = names[0] if names else None
    return tools


@functools.cache
def edit_fields() -> dict[str, frozenset[str]]:
    """Each context_management edit's `type` and the fields it takes (anthropic.types.beta's
    BetaContextManagementConfigParam: clear_tool_uses_20250919, clear_thinking_20251015, compact_20260112)."""
    from anthropic.types.beta.beta_context_management_config_param import Edit

    return {literals(typing.get_type_hints(edit)["type"])[0]: frozenset(edit.__required_keys__ | edit.__optional_keys__)
            for edit in typing.get_args(Edit)}


def _is_typed(block: Any) -> bool:
    """A TypedDict of a block (the beta union also holds the response union, which is not a class)."""
    return isinstance(block, type)


@functools.cache
def custom_tool_fields() -> frozenset[str]:
    """The fields of a custom (client) tool definition (anthropic.types.ToolParam)."""
    from anthropic.types import ToolParam

    return frozenset(ToolParam.__required_keys__ | ToolParam.__optional_keys__)


@functools.cache
def known_betas() -> frozenset[str]:
    """The values the `anthropic-beta` header may take (anthropic.types.AnthropicBetaParam)."""
    from anthropic.types import AnthropicBetaParam

    return frozenset(literals(AnthropicBetaParam))


def tags(values: tuple[str, ...] | list[str]) -> str:
    """Values listed as the API's validation errors list them: 'a', 'b', 'c'."""
    return ", ".join(f"'{v}'" for v in values)
