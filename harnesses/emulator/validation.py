"""Request validation as the Messages API does it: every rule, in the order they are checked; the first broken
one answers (its status, `error.type` and message). docs/emulator.md lists them with their sources.

Strict is the default. Loose validation (`model.strict: false`) checks only the rules marked `loose`, the shapes
the emulator cannot answer without; the API itself is never loose.
"""
from __future__ import annotations

from typing import Any, Mapping

from harnesses.emulator import cache_rules as cache
from harnesses.emulator import content_rules as content
from harnesses.emulator import context_rules as context
from harnesses.emulator import request_rules as request
from harnesses.emulator import thinking_rules as thinking
from harnesses.emulator import tool_rules as tools
from harnesses.emulator.catalog import ModelLimits
from harnesses.emulator.rules import Request, RequestError, Rule

ENDPOINTS = ("messages", "count_tokens")

RULES: tuple[Rule, ...] = tuple(check.rule for check in (  # type: ignore[attr-defined]
    request.api_version, request.beta_header, request.known_fields,
    request.model_field, request.known_model, request.max_tokens_field, request.max_tokens_limit,
    request.messages_field, request.sampling_ranges, request.temperature_or_top_p, request.stop_sequences_field,
    request.metadata_field, request.service_tier_field, request.stream_field, request.system_field,
    content.message_shape, content.block_shape, content.non_empty_content, content.block_types, content.block_roles,
    content.tool_result_blocks, content.text_blocks, content.image_blocks, content.document_blocks,
    content.tool_use_blocks, content.unique_tool_use_ids,
    content.tool_uses_answered, content.tool_results_first, content.tool_results_answer_uses,
    content.prefill_support, content.final_assistant_whitespace,
    tools.tools_field, tools.tool_definitions, tools.tool_schemas_valid, tools.unique_tool_names,
    tools.tool_choice_shape, tools.tool_choice_needs_tools, tools.tool_choice_names_offered_tool,
    cache.cache_control_values, cache.cache_breakpoints_at_most_four, cache.cache_ttl_order,
    thinking.thinking_config, thinking.thinking_budget_below_max_tokens, thinking.thinking_sampling,
    thinking.thinking_tool_choice, thinking.thinking_blocks_genuine, thinking.thinking_on_tool_turn,
    context.context_management_edits, context.context_management_beta, context.clear_tool_uses_config,
    context.clear_thinking_config, context.clear_thinking_needs_thinking, context.clear_thinking_first,
    context.compact_config, context.compact_trigger_minimum, context.compaction_block_shape, context.compaction_blocks_declared,
    context.compaction_request,
    request.context_window,  # last: counting a request's tokens needs it well formed, and costs more than a rule
))
LOOSE = tuple(r for r in RULES if r.loose)


def validate(body: dict[str, Any], headers: Mapping[str, str], models: Mapping[str, ModelLimits], strict: bool = True,
             endpoint: str = "messages", beta: bool = False) -> Request:
    """The request as the rules read it (its edited prompt worked out once, for the server too), or the RequestError of
    the first rule `body` (with its `headers`; `beta`: sent as a beta request, ?beta=true) breaks, its `rule` set to
    the rule's name."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint={endpoint!r}; valid: {', '.join(ENDPOINTS)}")
    seen = Request(body, headers, models, endpoint, beta)
    for checked in RULES if strict else LOOSE:
        try:
            checked.check(seen)
        except RequestError as exc:
            exc.rule = checked.name
            raise
    return seen
