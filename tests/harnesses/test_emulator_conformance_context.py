"""The API's server-side context management, emulated (issue 21, item 4): the rules of harnesses/emulator/
context_rules.py, one test each (test_emulator_conformance.py's coverage check finds them here), and what the server
does with a request that passes them: context editing (clear_tool_uses_20250919, clear_thinking_20251015) and
compaction (compact_20260112). Through the SDK's beta client over HTTP, as the anthropic backend sends them
(`client.beta.messages.create(betas=...)`: POST /v1/messages?beta=true with the anthropic-beta header).
"""
from __future__ import annotations

from typing import Any

import anthropic
import pytest

from harnesses.contexts.vocabulary import API_CLEARED, read_task
from harnesses.emulator.service import prompt_tokens
from harnesses.emulator.signatures import sign
from tests.conftest import ARITHMETIC
from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import MODEL, READ_FILE, rejected, user

api = conformance.api  # the SDK client fixture

EDITING = "context-management-2025-06-27"
COMPACTING = "compact-2026-01-12"
CLEAR = {"type": "clear_tool_uses_20250919"}
COMPACT = {"type": "compact_20260112"}
THINKING_ON = {"type": "enabled", "budget_tokens": 1024}


def tool_log(uses: int, output: str = "x" * 400) -> list[dict[str, Any]]:
    """A task, then `uses` read_file calls each answered by `output`."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Read the files one by one."}]
    for i in range(uses):
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": f"toolu_{i}", "name": "read_file", "input": {"path": f"f{i}.txt"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": output}]})
    return messages


def request(betas: tuple[str, ...] = (EDITING,), **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 2048, "messages": user(ARITHMETIC), "betas": list(betas), **fields}


async def beta(api: anthropic.AsyncAnthropic, **fields: Any) -> Any:
    """POST /v1/messages?beta=true through the SDK's beta client (its `betas` become the anthropic-beta header)."""
    return await api.beta.messages.create(**request(**fields), timeout=30)


async def beta_rejected(api: anthropic.AsyncAnthropic, rule: str, fragment: str, **fields: Any) -> str:
    """A beta request the emulator must refuse by `rule`, with a message holding `fragment`."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        await beta(api, **fields)
    found = caught.value
    assert found.response.headers.get("x-emulator-rule") == rule, (found.response.headers.get("x-emulator-rule"), found.body)
    assert fragment in found.body["error"]["message"], found.body
    return found.body["error"]["message"]


def thinking_log(turns: int) -> list[dict[str, Any]]:
    """A tool log whose assistant turns each start with a genuine thinking block."""
    messages = tool_log(turns)
    for message in messages[1::2]:
        thought = f"I read {message['content'][0]['input']['path']} next."
        message["content"].insert(0, {"type": "thinking", "thinking": thought, "signature": sign(thought)})
    return messages


# -- the rules ------------------------------------------------------------------------------------------------


async def test_context_management_edits_are_the_beta_types(api):
    """anthropic.types.beta.BetaContextManagementConfigParam: edits of the three types, with their fields only; a
    request that is not a beta one does not know the field at all (rule known_fields, as for any unknown field)."""
    await beta_rejected(api, "context_management_edits", "Input tag 'clear_everything_2030' found",
                        context_management={"edits": [{"type": "clear_everything_2030"}]})
    await beta_rejected(api, "context_management_edits", "edits.0.clear_tool_uses_20250919.keep_all: Extra inputs",
                        context_management={"edits": [{**CLEAR, "keep_all": True}]})
    await beta_rejected(api, "context_management_edits", "context_management.edits: Input should be a valid list",
                        context_management={"edits": "all"})
    await rejected(api, "known_fields", "context_management: Extra inputs are not permitted",
                   conformance.body(context_management={"edits": [CLEAR]}))
    assert (await beta(api, context_management={"edits": [CLEAR]})).context_management.applied_edits == []


async def test_context_management_beta_header_for_each_edit(api):
    """https://platform.claude.com/docs/en/build-with-claude/context-editing: clearing needs the
    context-management-2025-06-27 beta; compaction (…/compaction) needs compact-2026-01-12."""
    await beta_rejected(api, "context_management_beta", f"requires the `{EDITING}` beta", betas=("prompt-caching-2024-07-31",),
                        context_management={"edits": [CLEAR]})
    await beta_rejected(api, "context_management_beta", f"requires the `{COMPACTING}` beta", context_management={"edits": [COMPACT]})
    assert (await beta(api, betas=(EDITING, COMPACTING), context_management={"edits": [COMPACT, CLEAR]})).content


async def test_clear_tool_uses_config_shapes(api):
    """anthropic.types.beta.BetaClearToolUses20250919EditParam: trigger, keep, clear_at_least, exclude_tools and
    clear_tool_inputs take the documented shapes."""
    cases = [
        ({"trigger": {"type": "messages", "value": 3}}, "trigger: Input tag 'messages' found"),
        ({"trigger": {"type": "input_tokens", "value": 0}}, "trigger.input_tokens.value: Input should be greater than or equal to 1"),
        ({"keep": {"type": "input_tokens", "value": 3}}, "keep: Input tag 'input_tokens' found"),
        ({"keep": {"type": "tool_uses", "value": "3"}}, "keep.tool_uses.value: Input should be a valid integer"),
        ({"clear_at_least": {"type": "tool_uses", "value": 3}}, "clear_at_least: Input tag 'tool_uses' found"),
        ({"exclude_tools": "read_file"}, "exclude_tools: Input should be a list of tool names"),
        ({"clear_tool_inputs": "yes"}, "clear_tool_inputs: Input should be a valid boolean or a list of tool names"),
    ]
    for fields, fragment in cases:
        await beta_rejected(api, "clear_tool_uses_config", fragment, context_management={"edits": [{**CLEAR, **fields}]})
    whole = {"trigger": {"type": "tool_uses", "value": 2}, "keep": {"type": "tool_uses", "value": 1},
             "clear_at_least": {"type": "input_tokens", "value": 0}, "exclude_tools": ["bash"], "clear_tool_inputs": ["read_file"]}
    assert (await beta(api, context_management={"edits": [{**CLEAR, **whole}]})).content


async def test_clear_thinking_config_shapes(api):
    """anthropic.types.beta.BetaClearThinking20251015EditParam: keep is "all", {"type": "all"} or thinking_turns."""
    edit = {"type": "clear_thinking_20251015"}
    await beta_rejected(api, "clear_thinking_config", "keep: Input tag 'turns' found", thinking=THINKING_ON,
                        context_management={"edits": [{**edit, "keep": {"type": "turns", "value": 1}}]})
    for keep in ("all", {"type": "all"}, {"type": "thinking_turns", "value": 2}):
        assert (await beta(api, thinking=THINKING_ON, context_management={"edits": [{**edit, "keep": keep}]})).content


async def test_clear_thinking_needs_thinking_on(api):
    """https://platform.claude.com/docs/en/build-with-claude/context-editing: clearing thinking needs thinking."""
    await beta_rejected(api, "clear_thinking_needs_thinking", "requires `thinking` to be enabled",
                        context_management={"edits": [{"type": "clear_thinking_20251015"}]})


async def test_clear_thinking_first_when_combined(api):
    """https://platform.claude.com/docs/en/build-with-claude/context-editing: clear_thinking_20251015 is listed first."""
    await beta_rejected(api, "clear_thinking_first", "must be listed before", thinking=THINKING_ON,
                        context_management={"edits": [CLEAR, {"type": "clear_thinking_20251015"}]})
    assert (await beta(api, thinking=THINKING_ON, context_management={"edits": [{"type": "clear_thinking_20251015"}, CLEAR]})).content


async def test_compact_config_shapes(api):
    """anthropic.types.beta.BetaCompact20260112EditParam: an input_tokens trigger, string instructions, a boolean
    pause_after_compaction."""
    cases = [({"trigger": {"type": "tool_uses", "value": 60_000}}, "trigger: Input tag 'tool_uses' found"),
             ({"instructions": 7}, "instructions: Input should be a valid string"),
             ({"pause_after_compaction": "no"}, "pause_after_compaction: Input should be a valid boolean"),
             ({"keep": {"type": "tool_uses", "value": 3}}, "compact_20260112.keep: Extra inputs are not permitted")]
    for fields, fragment in cases:
        await beta_rejected(api, "compact_config" if "keep" not in fields else "context_management_edits", fragment,
                            betas=(COMPACTING,), context_management={"edits": [{**COMPACT, **fields}]})


async def test_compact_trigger_minimum_is_the_models(api):
    """https://platform.claude.com/docs/en/build-with-claude/compaction: a trigger of at least 50,000 input tokens on
    the API's models; the emulator's stand-ins take triggers from 1,000 (catalog.py)."""
    small = {"edits": [{**COMPACT, "trigger": {"type": "input_tokens", "value": 1_000}}]}
    await beta_rejected(api, "compact_trigger_minimum", "trigger.value: Input should be greater than or equal to 50000",
                        betas=(COMPACTING,), model="claude-sonnet-4-6", context_management=small)
    assert (await beta(api, betas=(COMPACTING,), model=MODEL, context_management=small)).content
    assert (await beta(api, betas=(COMPACTING,), model="claude-sonnet-4-6", context_management={
        "edits": [{**COMPACT, "trigger": {"type": "input_tokens", "value": 50_000}}]})).content


async def test_compaction_block_shape_and_role(api):
    """anthropic.types.beta.BetaCompactionBlockParam: in assistant messages, a summary or null, its fields only."""
    def sent(block: dict[str, Any], role: str = "assistant") -> list[dict[str, Any]]:
        return [{"role": role, "content": [block]}, {"role": "user", "content": "Go on."}]
    edits = {"edits": [COMPACT]}
    for block, role, fragment in [({"type": "compaction", "content": ""}, "assistant", "Input should be a non-empty string or null"),
                                  ({"type": "compaction", "content": "s", "text": "s"}, "assistant", "compaction.text: Extra inputs"),
                                  ({"type": "compaction", "content": "s"}, "user", "may only appear in `assistant` messages")]:
        await beta_rejected(api, "compaction_block_shape", fragment, betas=(COMPACTING,), messages=sent(block, role), context_management=edits)
    await rejected(api, "block_types", "Input tag 'compaction' found", conformance.body(messages=sent({"type": "compaction", "content": "s"})))
    assert (await beta(api, betas=(COMPACTING,), messages=sent({"type": "compaction", "content": None}), context_management=edits)).content


async def test_compaction_blocks_declared_by_the_compact_edit(api):
    """https://platform.claude.com/docs/en/build-with-claude/compaction: a request that sends a compaction block
    back declares compact_20260112 (a failed one, content null, is a no-op and needs none)."""
    messages = [{"role": "assistant", "content": [{"type": "compaction", "content": "[summary]"}]}, {"role": "user", "content": "Go on."}]
    await beta_rejected(api, "compaction_blocks_declared", "requires the `compact_20260112` edit", betas=(COMPACTING,), messages=messages)
    messages[0]["content"][0]["content"] = None
    assert (await beta(api, betas=(COMPACTING,), messages=messages)).content


async def test_compaction_request_summarizes_on_demand(api):
    """anthropic.types.beta.message_create_params.MessageCreateParams.compaction: {"type": "summarize"} answers with the
    compaction block alone (stop_reason compaction), and cannot be combined with context_management."""
    await beta_rejected(api, "compaction_request", "cannot be combined with `context_management`", betas=(COMPACTING,),
                        compaction={"type": "summarize"}, context_management={"edits": [COMPACT]})
    await beta_rejected(api, "compaction_request", "Input tag 'brief' found", betas=(COMPACTING,), compaction={"type": "brief"})
    counted = await api.beta.messages.count_tokens(model=MODEL, messages=tool_log(3), betas=[COMPACTING], compaction={
        "type": "summarize"}, context_management={"edits": [COMPACT]})
    assert counted.input_tokens == prompt_tokens({"messages": tool_log(3)})  # count_tokens ignores it
    answered = await beta(api, betas=(COMPACTING,), messages=tool_log(3), compaction={"type": "summarize"})
    assert [b.type for b in answered.content] == ["compaction"] and answered.stop_reason == "compaction"
    assert [i.type for i in answered.usage.iterations] == ["compaction"] and answered.usage.input_tokens == 0


# -- what the server does: context editing ----------------------------------------------------------------------


async def test_clearing_replaces_old_results_and_says_so(api, emulator):
    """Past the trigger, all but the latest `keep` tool results are the placeholder; applied_edits counts them and the
    tokens cleared; usage.input_tokens is the edited prompt's (what count_tokens reports for it)."""
    messages = tool_log(6)
    edit = {**CLEAR, "trigger": {"type": "input_tokens", "value": 100}, "keep": {"type": "tool_uses", "value": 2}}
    answered = await beta(api, messages=messages, tools=[READ_FILE], context_management={"edits": [edit]})
    applied = answered.context_management.applied_edits
    assert [(a.type, a.cleared_tool_uses) for a in applied] == [("clear_tool_uses_20250919", 4)]
    whole = prompt_tokens({"messages": messages, "tools": [READ_FILE]})
    assert answered.usage.input_tokens == whole - applied[0].cleared_input_tokens > 0
    counted = await api.beta.messages.count_tokens(model=MODEL, messages=messages, tools=[READ_FILE], betas=[EDITING],
                                                   context_management={"edits": [edit]})
    assert counted.input_tokens == answered.usage.input_tokens and counted.context_management.original_input_tokens == whole
    untouched = await beta(api, messages=messages, tools=[READ_FILE], context_management={"edits": [{**edit, "trigger": {
        "type": "input_tokens", "value": whole}}]})
    assert untouched.context_management.applied_edits == [] and untouched.usage.input_tokens == whole


async def test_clearing_keep_exclude_inputs_and_least(api, emulator):
    """exclude_tools keeps a tool's results, clear_tool_inputs empties the inputs too, a tool_uses trigger counts uses,
    and clear_at_least leaves the prompt whole when clearing would save less."""
    from harnesses.emulator.context_edits import edited_prompt

    messages = tool_log(4)
    messages[3]["content"][0]["name"] = "bash"
    messages[3]["content"][0]["input"] = {"command": "ls"}
    body = {"messages": messages, "context_management": {"edits": [{
        **CLEAR, "trigger": {"type": "tool_uses", "value": 3}, "keep": {"type": "tool_uses", "value": 1},
        "exclude_tools": ["bash"], "clear_tool_inputs": True}]}}
    edited = edited_prompt(body).body["messages"]
    results = [m["content"][0]["content"] for m in edited[2::2]]
    assert results == [API_CLEARED, "x" * 400, API_CLEARED, "x" * 400]  # bash's kept, and the latest
    assert [m["content"][0]["input"] for m in edited[1::2]] == [{}, {"command": "ls"}, {}, {"path": "f3.txt"}]
    body["context_management"]["edits"][0]["clear_at_least"] = {"type": "input_tokens", "value": 10_000}
    assert edited_prompt(body).applied == []
    answered = await beta(api, messages=messages, context_management=body["context_management"])
    assert answered.context_management.applied_edits == []


async def test_clearing_invalidates_the_cache_from_the_first_cleared_block(api, emulator):
    """A cleared result changes the prompt from that block on: the cached prefix before it (here the system prompt's)
    still reads, what follows is written again, and the next request reads it all."""
    system = [{"type": "text", "text": "Be brief. " * 600, "cache_control": {"type": "ephemeral"}}]
    for uses in range(1, 9):  # a conversation growing call by call, each caching its whole prefix
        messages = tool_log(uses, output="y" * 2000)
        messages[-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
        whole = await beta(api, system=system, messages=messages)
    edit = {**CLEAR, "trigger": {"type": "input_tokens", "value": 100}, "keep": {"type": "tool_uses", "value": 3}}
    cleared = await beta(api, system=system, messages=messages, context_management={"edits": [edit]})
    read = prompt_tokens({"system": system})
    assert whole.usage.cache_read_input_tokens > cleared.usage.cache_read_input_tokens == read
    assert cleared.usage.cache_creation_input_tokens > 0
    again = await beta(api, system=system, messages=messages, context_management={"edits": [edit]})
    assert again.usage.cache_read_input_tokens == read + cleared.usage.cache_creation_input_tokens


async def test_clearing_thinking_keeps_the_latest_turns(api, emulator):
    """clear_thinking_20251015 drops the thinking of all but the latest `keep` assistant turns, and says how many."""
    messages = thinking_log(4)
    edit = {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}
    answered = await beta(api, messages=messages, thinking=THINKING_ON, tools=[READ_FILE], context_management={"edits": [edit]})
    applied = answered.context_management.applied_edits
    assert [(a.type, a.cleared_thinking_turns) for a in applied] == [("clear_thinking_20251015", 3)]
    assert applied[0].cleared_input_tokens > 0


# -- what the server does: compaction ----------------------------------------------------------------------------


async def test_compaction_past_the_trigger_starts_the_answer(api, emulator):
    """Past the trigger the answer starts with a compaction block (the offline brain's summary, restating the task);
    usage.iterations bills the summarizing step apart from the message, whose input is the summary's."""
    messages = tool_log(5, "x" * 1200)
    edit = {**COMPACT, "trigger": {"type": "input_tokens", "value": 1_000}}
    answered = await beta(api, betas=(COMPACTING,), messages=messages, tools=[READ_FILE], context_management={"edits": [edit]})
    assert answered.content[0].type == "compaction" and len(answered.content) > 1
    assert read_task(answered.content[0].content) == "Read the files one by one."
    compaction, message = answered.usage.iterations
    assert (compaction.type, message.type) == ("compaction", "message")
    assert compaction.input_tokens == prompt_tokens({"messages": messages, "tools": [READ_FILE]})
    assert message.input_tokens == answered.usage.input_tokens < compaction.input_tokens
    below = await beta(api, betas=(COMPACTING,), messages=tool_log(1), tools=[READ_FILE], context_management={"edits": [edit]})
    assert below.content[0].type != "compaction" and below.usage.iterations is None


async def test_compaction_pause_returns_the_block_alone(api, emulator):
    """pause_after_compaction: the answer is the compaction block alone, stop_reason "compaction", streamed as well."""
    edit = {**COMPACT, "trigger": {"type": "input_tokens", "value": 1_000}, "pause_after_compaction": True}
    fields = request(betas=(COMPACTING,), messages=tool_log(5, "x" * 1200), context_management={"edits": [edit]})
    async with api.beta.messages.stream(**fields) as stream:
        streamed = await stream.get_final_message()
    assert [b.type for b in streamed.content] == ["compaction"] and streamed.stop_reason == "compaction"
    assert streamed.content[0].content and [i.type for i in streamed.usage.iterations] == ["compaction"]


async def test_a_sent_back_compaction_block_drops_what_came_before(api, emulator):
    """A later request that sends the block back is read from it on: its input tokens count from the block, and the
    brain carries on from the summary."""
    edit = {**COMPACT, "trigger": {"type": "input_tokens", "value": 1_000}}
    messages = tool_log(5, "x" * 1200)
    answered = await beta(api, betas=(COMPACTING,), messages=messages, context_management={"edits": [edit]})
    block = answered.content[0].model_dump(exclude_none=True)
    later = [*messages, {"role": "assistant", "content": [block]}, {"role": "user", "content": "Go on."}]
    again = await beta(api, betas=(COMPACTING,), messages=later, context_management={"edits": [edit]})
    assert again.usage.input_tokens == prompt_tokens({"messages": later[-2:]})
    counted = await api.beta.messages.count_tokens(model=MODEL, messages=later, betas=[COMPACTING], context_management={"edits": [edit]})
    assert counted.input_tokens == again.usage.input_tokens  # count_tokens agrees with usage here too
    assert again.content[0].type != "compaction"
