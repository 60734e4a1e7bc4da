"""Rules on tool definitions and tool_choice: names, input schemas, server tools, what tool_choice may ask for.

Sources: https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use, and the SDK's
anthropic.types.ToolParam, ToolUnionParam and ToolChoiceParam.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from harnesses.emulator import schema
from harnesses.emulator.rules import Request, invalid, rule, unknown_tag

TOOL_USE = "https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use"
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
CHOICES = ("auto", "any", "tool", "none")
FORCING = ("any", "tool")  # the tool_choice types that force a tool use


@rule("anthropic.types.ToolUnionParam", loose=True)
def tools_field(request: Request) -> None:
    """`tools` is a list of objects."""
    tools = request.body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list")
    bad = next((i for i, tool in enumerate(tools) if not isinstance(tool, dict)), None)
    if bad is not None:
        raise invalid(f"tools.{bad}: Input should be a valid dictionary")


@rule(TOOL_USE + "#specifying-client-tools; anthropic.types.ToolParam, ToolUnionParam")
def tool_definitions(request: Request) -> None:
    """A custom tool has a name (1-128 letters, digits, _ or -) and an input_schema of type object, and no other
    fields than ToolParam's; a server tool has a type the API knows, and the name that type fixes."""
    for i, tool in enumerate(request.tools):
        kind = tool.get("type")
        if kind in (None, "custom"):
            _check_custom(i, tool)
        elif kind in schema.server_tools(request.beta):
            name = schema.server_tools(request.beta)[kind]
            if name is not None and tool.get("name") != name:
                raise invalid(f"tools.{i}.{kind}.name: Input should be '{name}'")
        else:
            raise unknown_tag(f"tools.{i}", kind, ["custom", *schema.server_tools(request.beta)])


@rule(TOOL_USE + "#specifying-client-tools")
def tool_schemas_valid(request: Request) -> None:
    """A custom tool's input_schema is a valid JSON Schema (draft 2020-12)."""
    for i, tool in enumerate(request.tools):
        if tool.get("type") in (None, "custom") and not _valid_schema(tool["name"], tool["input_schema"]):
            raise invalid(f"tools.{i}.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12 "
                          "(https://json-schema.org/draft/2020-12). Learn more about tool use at "
                          "https://docs.claude.com/en/docs/tool-use.")


@rule(TOOL_USE)
def unique_tool_names(request: Request) -> None:
    """No two tools share a name."""
    names = [tool.get("name", tool.get("type")) for tool in request.tools]  # a toolset has no name: its type stands in
    if len(names) != len(set(names)):
        raise invalid("tools: Tool names must be unique.")


@rule("anthropic.types.ToolChoiceParam; " + TOOL_USE + "#forcing-tool-use", loose=True)
def tool_choice_shape(request: Request) -> None:
    """tool_choice is {"type": auto | any | tool | none}; `tool` names its tool; disable_parallel_tool_use is a boolean
    (and not for `none`)."""
    if "tool_choice" not in request.body:
        return
    choice = request.body["tool_choice"]
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in CHOICES:
        raise unknown_tag("tool_choice.type", kind, CHOICES)
    allowed = {"type"} | ({"name"} if kind == "tool" else set()) | (set() if kind == "none" else {"disable_parallel_tool_use"})
    extra = next((key for key in choice if key not in allowed), None)
    if extra is not None:
        raise invalid(f"tool_choice.{kind}.{extra}: Extra inputs are not permitted")
    if kind == "tool" and not isinstance(choice.get("name"), str):
        raise invalid("tool_choice.tool.name: Field required")
    if not isinstance(choice.get("disable_parallel_tool_use", False), bool):
        raise invalid(f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean")


@rule(TOOL_USE + "#forcing-tool-use")
def tool_choice_needs_tools(request: Request) -> None:
    """tool_choice any or tool needs tools to choose from."""
    if (request.body.get("tool_choice") or {}).get("type") in FORCING and not request.tools:
        raise invalid("`tool_choice` may only be specified while providing tools.")


@rule(TOOL_USE + "#forcing-tool-use")
def tool_choice_names_offered_tool(request: Request) -> None:
    """tool_choice {"type": "tool"} names one of the request's tools."""
    choice = request.body.get("tool_choice") or {}
    offered = [tool.get("name") for tool in request.tools]
    if choice.get("type") == "tool" and choice["name"] not in offered:
        raise invalid(f"tool_choice.tool.name: no tool named {choice['name']!r} is in `tools` "
                      f"(offered: {', '.join(map(str, offered))})")


def _check_custom(i: int, tool: dict[str, Any]) -> None:
    extra = next((key for key in tool if key not in schema.custom_tool_fields()), None)
    if extra is not None:
        raise invalid(f"tools.{i}.custom.{extra}: Extra inputs are not permitted")
    if not (isinstance(tool.get("name"), str) and TOOL_NAME.fullmatch(tool["name"])):
        raise invalid(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    if "input_schema" not in tool:
        raise invalid(f"tools.{i}.custom.input_schema: Field required")
    if not isinstance(tool["input_schema"], dict) or tool["input_schema"].get("type") != "object":
        raise invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
    if "description" in tool and not isinstance(tool["description"], str):
        raise invalid(f"tools.{i}.custom.description: Input should be a valid string")


_CHECKED: dict[str, list[tuple[dict[str, Any], bool]]] = {}  # by tool name: each schema seen, and whether it is valid
_MAX_CHECKED = 4096


def _valid_schema(name: str, input_schema: dict[str, Any]) -> bool:
    """Whether `input_schema` is valid JSON Schema draft 2020-12. The same tools come with every call, so each
    distinct schema is checked once (comparing is much cheaper than checking, or than a key made of it)."""
    seen = _CHECKED.get(name, [])
    known = next((valid for checked, valid in seen if checked == input_schema), None)
    if known is not None:
        return known
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(input_schema)
        valid = True
    except SchemaError:
        valid = False
    if sum(map(len, _CHECKED.values())) >= _MAX_CHECKED:
        _CHECKED.clear()
    _CHECKED.setdefault(name, []).append((copy.deepcopy(input_schema), valid))
    return valid
