"""Where a tool call goes, and running it there: the context strategy's own tools (recall, memory) are answered
from the log, the credential proxy's with the session's capability, and every other by one of the session's hands.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from harnesses.base import ContextStrategy
from harnesses.hands import Hands, hand_names
from harnesses.log import SessionLog
from harnesses.steps import RunTools
from sandboxes.base import SandboxProvider, ToolResult
from sandboxes.tools import TOOLS
from stores.events import HARNESS_HAND, PROXY_HAND, ToolCall

if TYPE_CHECKING:
    from sandboxes.credentials.client import SessionCredentials

INTERRUPTED_POLICIES = ("idempotent", "error", "rerun")


class Router:
    """The tools a session is offered, the queue each call waits in, and each call run where it belongs, its
    `tool.call` logged before it runs."""

    def __init__(self, sandboxes: SandboxProvider, context: ContextStrategy, credentials: SessionCredentials | None,
                 hands: Sequence[str] | None, interrupted: str):
        if interrupted not in INTERRUPTED_POLICIES:
            raise ValueError(f"interrupted={interrupted!r}; valid: {', '.join(INTERRUPTED_POLICIES)}")
        self.sandboxes, self.context, self.credentials = sandboxes, context, credentials
        self.hand_names = hand_names(hands)  # the sandboxes a session may hold at once; calls name theirs
        self.interrupted = interrupted
        # about the log, so an interrupted one just runs again
        self.context_tools = {t.name: t for t in context.tools}
        # run by the credential proxy with the session's capability: the harness never holds a secret
        self.proxy_tools = {t.name: t for t in credentials.tools} if credentials else {}

    def offered(self, meta: dict) -> list[dict[str, Any]]:
        """The tools shown to the model: the sandbox's, narrowed by the session's `tools` list, the context's,
        and the proxy's that the session was granted."""
        wanted = meta.get("tools")
        granted = (meta.get("credentials") or {}).get("tools") or ()
        return [with_hands(t.to_api(), self.hand_names) for t in self.sandboxes.tools if wanted is None or t.name in wanted] + [
            t.to_api() for t in self.context_tools.values()] + [
            t.to_api() for t in self.proxy_tools.values() if t.name in granted]

    def queue(self, call: dict) -> str:
        """The queue a call waits in: its hand's (a wrong hand name: the first's), or that of a harness tool."""
        name = call.get("name")
        if name in self.context_tools or name in self.proxy_tools:
            return f"({name})"
        hand, _ = self._hand_of(call.get("input"))
        return hand if isinstance(hand, str) else self.hand_names[0]

    async def run(self, session: SessionLog, hands: Hands, step: RunTools, call: dict, offered: set[str]) -> ToolResult:
        tool_use_id, name, input = call.get("id"), call.get("name"), call.get("input")
        if tool_use_id in step.refused:
            return ToolResult(step.refused[tool_use_id], is_error=True)
        if name not in offered:
            return ToolResult(f"tool {name!r} is not offered in this session; offered: {', '.join(sorted(offered))}", True)
        own = name in self.context_tools  # the session reading itself: answered from the log, not by the hands
        proxied = name in self.proxy_tools
        hand, input = (None, input) if own or proxied else self._hand_of(input)
        if tool_use_id in step.logged and not own and not self._may_rerun(name):
            return ToolResult(
                "interrupted: this tool call started before a crash and its outcome is unknown; "
                "check the workspace before retrying",
                is_error=True,
            )
        key = f"{session.session_id}:{tool_use_id}"
        if tool_use_id not in step.logged:
            kind = HARNESS_HAND if own else PROXY_HAND if proxied else self.sandboxes.hand
            await session.append(ToolCall(tool_use_id, name, call.get("input"), kind, key,
                                          hand_name=hand if isinstance(hand, str) else None).event())
        if own:
            return await self.context.run_tool(name, input, session.events)
        if proxied:
            return await self.credentials.run_tool(name, input, session.session_id)
        if isinstance(hand, ToolResult):
            return hand
        return await hands.execute(name, input, key, hand)

    def _hand_of(self, input: Any) -> tuple[str | ToolResult, Any]:
        """(the hand a sandbox call runs on, its input without the `hand` field), or (an error result, input)."""
        if len(self.hand_names) == 1 or not isinstance(input, dict):
            return self.hand_names[0], input
        input = dict(input)
        hand = input.pop("hand", self.hand_names[0])
        if hand not in self.hand_names:
            return ToolResult(f"hand {hand!r} is not one of this session's hands; valid: {', '.join(self.hand_names)}", True), input
        return hand, input

    def _may_rerun(self, name: str) -> bool:
        if self.interrupted == "idempotent":
            return name in TOOLS and TOOLS[name].idempotent
        return self.interrupted == "rerun"


def with_hands(tool: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A sandbox tool's API entry; with several hands, its input gains `hand`: which one runs the call."""
    if len(names) == 1:
        return tool
    schema = tool["input_schema"]
    hand = {"type": "string", "enum": list(names),
            "description": f"Which hand (sandbox, with a workspace of its own) runs this call; default {names[0]}. "
                           "Calls on different hands run at the same time."}
    return {**tool, "input_schema": {**schema, "properties": {**schema["properties"], "hand": hand}}}
