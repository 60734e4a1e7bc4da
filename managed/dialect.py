"""The emulated brain's dialect: the offline brain's policies (experiments/tasks) call harnesslab's own tools
(read_file, write_file, edit_file, list_files, bash) and read their calls back from the conversation, while a
served session offers the agent toolset (managed/toolset.py). `HarnesslabDialect` wraps such a model and
translates at its boundary, both ways: the request's tools and tool calls into harnesslab's names, the response's
tool calls into the toolset's.

Why at the model and nowhere else: the session log, the hands and the API must all speak the toolset's names
(one log, one truth: what the API shows is what ran). A context strategy sees only the request, so the brain's
answer would be logged in its own dialect; a translation in the router would leave two dialects in one log. A
real model (model=anthropic) reads the toolset natively and is not wrapped.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from harnesses.base import Model, ModelRequest, ModelResponse
from sandboxes.tools import TOOLS

BRAIN_NAMES = {"bash": "bash", "read": "read_file", "write": "write_file", "edit": "edit_file", "glob": "list_files"}


def for_toolset(model: Model) -> Model:
    """`model` as a served session's brain: the offline brain (emulator, scripted) translated, any other as it is."""
    from harnesses.models.emulator import EmulatorModel
    from harnesses.models.scripted import ScriptedModel

    return HarnesslabDialect(model) if isinstance(model, (EmulatorModel, ScriptedModel)) else model


class HarnesslabDialect(Model):
    def __init__(self, inner: Model):
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    async def respond(self, request: ModelRequest) -> ModelResponse:
        tools = [_brain_tool(tool) for tool in request.tools if tool.get("name") != "grep"]  # the brain greps with bash
        messages = [_message(message, _brain_block) for message in request.messages]
        response = await self.inner.respond(dataclasses.replace(request, tools=tools, messages=messages))
        return dataclasses.replace(response, content=[_agent_block(block) for block in response.content])

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def server_usage(self) -> tuple[float | None, float | None]:
        return self.inner.server_usage()


def as_agent_call(name: str, input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A call of harnesslab's tools as the agent toolset's call (other tools, a context's or the proxy's, as they are)."""
    if name == "bash":
        timeout = {"timeout_ms": round(input["timeout"] * 1000)} if isinstance(input.get("timeout"), (int, float)) else {}
        return "bash", {**{key: value for key, value in input.items() if key != "timeout"}, **timeout}
    if name == "read_file":
        start, limit = input.get("offset"), input.get("limit")
        rest = {key: value for key, value in _renamed(input, "path", "file_path").items() if key not in ("offset", "limit")}
        if not isinstance(start, int) and not isinstance(limit, int):
            return "read", rest
        first = start if isinstance(start, int) else 1
        return "read", {**rest, "view_range": [first, first + limit - 1 if isinstance(limit, int) else 0]}
    if name in ("write_file", "edit_file"):
        return name.removesuffix("_file"), _renamed(input, "path", "file_path")
    if name == "list_files":
        where = {"path": input["path"]} if "path" in input else {}
        return "glob", {"pattern": "**/*" if input.get("recursive", True) else "*", **where}
    return name, input


def as_brain_call(name: str, input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The inverse of `as_agent_call`, for any input (a call the hands refused as invalid too): the brain's own call."""
    if name == "bash":
        timeout = {"timeout": input["timeout_ms"] / 1000} if isinstance(input.get("timeout_ms"), int) else {}
        return "bash", {**{k: v for k, v in input.items() if k not in ("timeout_ms", "restart")}, **timeout}
    if name == "read":
        rest = _renamed(input, "file_path", "path", drop="view_range")
        view = input.get("view_range")
        if not (isinstance(view, list) and len(view) == 2 and all(isinstance(n, int) for n in view)):
            return "read_file", rest
        start, end = view
        return "read_file", {**rest, "offset": start, **({"limit": end - start + 1} if end > 0 else {})}
    if name in ("write", "edit"):
        return f"{name}_file", _renamed(input, "file_path", "path")
    if name == "glob" and input.get("pattern") in ("**/*", "*"):
        where = {"path": input["path"]} if "path" in input else {}
        return "list_files", {**where, **({"recursive": False} if input["pattern"] == "*" else {})}
    return name, input


def _renamed(input: dict[str, Any], old: str, new: str, drop: str = "") -> dict[str, Any]:
    return {(new if key == old else key): value for key, value in input.items() if key != drop}


def _brain_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return TOOLS[BRAIN_NAMES[tool["name"]]].to_api() if tool.get("name") in BRAIN_NAMES else tool


def _message(message: dict[str, Any], translate) -> dict[str, Any]:
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return message
    return {**message, "content": [translate(block) for block in content]}


def _brain_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") != "tool_use" or not isinstance(block.get("input"), dict):
        return block
    name, input = as_brain_call(block["name"], block["input"])
    return {**block, "name": name, "input": input}


def _agent_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") != "tool_use" or not isinstance(block.get("input"), dict):
        return block
    name, input = as_agent_call(block["name"], block["input"])
    return {**block, "name": name, "input": input}
