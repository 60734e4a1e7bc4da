"""Rules on extended thinking: the thinking config, what thinking forbids, and thinking blocks passed back.

Sources: https://docs.claude.com/en/docs/build-with-claude/extended-thinking, and the SDK's
anthropic.types.ThinkingConfigParam and ThinkingBlockParam.
"""
from __future__ import annotations

from harnesses.emulator.rules import Request, invalid, rule, unknown_tag
from harnesses.emulator.signatures import genuine
from harnesses.emulator.thinking import genuine_omitted

THINKING = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
TYPES = ("enabled", "disabled", "adaptive", "between_tools")
DISPLAYS = ("summarized", "omitted")
MIN_BUDGET = 1024


@rule("anthropic.types.ThinkingConfigParam; " + THINKING)
def thinking_config(request: Request) -> None:
    """thinking is {"type": enabled | disabled | adaptive | between_tools}; enabled takes budget_tokens >= 1024."""
    if "thinking" not in request.body:
        return
    config = request.body["thinking"]
    kind = config.get("type") if isinstance(config, dict) else None
    if kind not in TYPES:
        raise unknown_tag("thinking.type", kind, TYPES)
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise invalid("thinking.enabled.budget_tokens: Field required (an integer)")
        if budget < MIN_BUDGET:
            raise invalid(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}")
    if kind in ("enabled", "adaptive") and config.get("display") not in (None, *DISPLAYS):
        raise invalid(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")


@rule(THINKING + "#max-tokens-and-context-window-size")
def thinking_budget_below_max_tokens(request: Request) -> None:
    """budget_tokens is below max_tokens: thinking counts towards it."""
    config = request.body.get("thinking") or {}
    if request.endpoint == "messages" and config.get("type") == "enabled" and config["budget_tokens"] >= request.body["max_tokens"]:
        raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                      f"{THINKING}#max-tokens-and-context-window-size")


@rule(THINKING + "#feature-compatibility")
def thinking_sampling(request: Request) -> None:
    """With thinking on: temperature only 1, no top_k, top_p from 0.95 to 1."""
    if not request.thinking:
        return
    temperature, top_p = request.body.get("temperature"), request.body.get("top_p")
    if temperature is not None and temperature != 1:
        raise invalid(f"`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at "
                      f"{THINKING}#feature-compatibility")
    if request.body.get("top_k") is not None:
        raise invalid(f"`top_k` may not be set when thinking is enabled. Please consult our documentation at "
                      f"{THINKING}#feature-compatibility")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise invalid(f"`top_p` must be between 0.95 and 1 when thinking is enabled. Please consult our documentation at "
                      f"{THINKING}#feature-compatibility")


@rule(THINKING + "#feature-compatibility")
def thinking_tool_choice(request: Request) -> None:
    """Thinking cannot be on while tool_choice forces a tool use (any, tool)."""
    if request.thinking and (request.body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")


@rule(THINKING + "#preserving-thinking-blocks; anthropic.types.ThinkingBlockParam")
def thinking_blocks_genuine(request: Request) -> None:
    """A thinking block comes back as it was sent: its signature matches its thinking (an omitted block's, its empty
    thinking); redacted data is a string."""
    for block in request.of_type("thinking"):
        thinking, signature = block.block.get("thinking"), block.block.get("signature")
        if not (isinstance(thinking, str) and isinstance(signature, str)
                and (genuine(thinking, signature) or (thinking == "" and genuine_omitted(signature)))):
            raise invalid(f"{block.path}: Invalid `signature` in `thinking` block")
    for block in request.of_type("redacted_thinking"):
        if not isinstance(block.block.get("data"), str):
            raise invalid(f"{block.path}.redacted_thinking.data: Input should be a valid string")


@rule(THINKING + "#extended-thinking-with-tool-use")
def thinking_on_tool_turn(request: Request) -> None:
    """With thinking on, an assistant turn whose tool uses the request answers last starts with its thinking block
    (after a compaction block, which the API starts an answer with when it compacts: it stands for what came before,
    https://platform.claude.com/docs/en/build-with-claude/compaction)."""
    turns = request.turns
    if not request.thinking or len(turns) < 2 or turns[-1].role != "user":
        return
    asked = turns[-2]
    answering = any(b.kind == "tool_result" for b in turns[-1].blocks)
    first = next((b for b in asked.blocks if b.kind != "compaction"), None)
    if answering and first is not None and first.kind not in ("thinking", "redacted_thinking"):
        raise invalid(f"{first.path}.type: Expected `thinking` or `redacted_thinking`, but found `{first.kind}`. "
                      "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                      "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                      "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
                      f"our documentation at {THINKING}")
