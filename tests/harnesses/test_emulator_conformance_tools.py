"""The emulator's rules on tool definitions and tool_choice, through the SDK (the helpers and the rule-coverage check
are in test_emulator_conformance.py)."""
from __future__ import annotations

from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import READ_FILE, WRITE_FILE, body, rejected, send

api = conformance.api  # the SDK client fixture


async def test_tools_field(api):
    """anthropic.types.ToolUnionParam: tools is a list of tool objects."""
    await rejected(api, "tools_field", "tools: Input should be a valid list", body(tools="read_file"))
    await rejected(api, "tools_field", "tools.1: Input should be a valid dictionary", body(tools=[READ_FILE, "write_file"]))


async def test_tool_definitions(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: a custom tool's name matches
    ^[a-zA-Z0-9_-]{1,128}$, its input_schema is an object schema, it has ToolParam's fields only; a server tool has a
    known type and the name the type fixes."""
    await rejected(api, "tool_definitions", "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
                   body(tools=[{**READ_FILE, "name": "read file"}]))
    await rejected(api, "tool_definitions", "tools.0.custom.name", body(tools=[{**READ_FILE, "name": "r" * 129}]))
    await rejected(api, "tool_definitions", "tools.1.custom.input_schema: Field required",
                   body(tools=[READ_FILE, {"name": "write_file", "description": "Write"}]))
    await rejected(api, "tool_definitions", "tools.0.custom.input_schema.type: Input should be 'object'",
                   body(tools=[{**READ_FILE, "input_schema": {"type": "array"}}]))
    await rejected(api, "tool_definitions", "tools.0.custom.inputSchema: Extra inputs are not permitted",
                   body(tools=[{**READ_FILE, "inputSchema": {}}]))
    await rejected(api, "tool_definitions", "tools.0.memory_20250818.name: Input should be 'memory'",
                   body(tools=[{"type": "memory_20250818", "name": "notes"}]))
    await rejected(api, "tool_definitions", "tools.0: Input tag 'calculator_2024' found using 'type' does not match",
                   body(tools=[{"type": "calculator_2024", "name": "calc"}]))
    assert (await send(api, body(tools=[READ_FILE, {"type": "memory_20250818", "name": "memory"}]))).content


async def test_tool_schemas_valid(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: input_schema is valid JSON Schema
    (draft 2020-12)."""
    broken = {**READ_FILE, "input_schema": {"type": "object", "properties": {"path": {"type": "strng"}}}}
    await rejected(api, "tool_schemas_valid", "tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema "
                   "draft 2020-12", body(tools=[broken]))
    assert (await send(api, body(tools=[READ_FILE]))).content  # the same name, a valid schema: checked again, not remembered


async def test_unique_tool_names(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use: tool names are unique."""
    await rejected(api, "unique_tool_names", "tools: Tool names must be unique.", body(tools=[READ_FILE, WRITE_FILE, READ_FILE]))


async def test_tool_choice_shape(api):
    """anthropic.types.ToolChoiceParam: auto, any, tool (with a name) or none; disable_parallel_tool_use a boolean."""
    tools = [READ_FILE]
    await rejected(api, "tool_choice_shape", "tool_choice.type: Input tag 'sometimes' found using 'type' does not match",
                   body(tools=tools, tool_choice={"type": "sometimes"}))
    await rejected(api, "tool_choice_shape", "tool_choice.tool.name: Field required", body(tools=tools, tool_choice={"type": "tool"}))
    await rejected(api, "tool_choice_shape", "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted",
                   body(tools=tools, tool_choice={"type": "none", "disable_parallel_tool_use": True}))
    await rejected(api, "tool_choice_shape", "tool_choice.auto.disable_parallel_tool_use: Input should be a valid boolean",
                   body(tools=tools, tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}))
    for choice in ({"type": "auto"}, {"type": "none"}, {"type": "any", "disable_parallel_tool_use": True}):
        assert (await send(api, body(tools=tools, tool_choice=choice))).content


async def test_tool_choice_needs_tools(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use: a forced tool use
    needs tools."""
    await rejected(api, "tool_choice_needs_tools", "`tool_choice` may only be specified while providing tools.",
                   body(tool_choice={"type": "any"}))


async def test_tool_choice_names_offered_tool(api):
    """https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use: the tool named
    must be offered."""
    await rejected(api, "tool_choice_names_offered_tool", "tool_choice.tool.name: no tool named 'delete_file' is in `tools`",
                   body(tools=[READ_FILE, WRITE_FILE], tool_choice={"type": "tool", "name": "delete_file"}))
