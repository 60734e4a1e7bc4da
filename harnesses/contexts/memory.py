"""Memory: the brain keeps a memory file it writes itself, shown at the top of every context, beside a
window over the latest turns.

The file is what `memory_write(content)` and `memory_append(text)` made of it, answered by the harness
and kept in the log (the tool calls are the record), so it survives a crash, a replay or a fork with the session; nothing lives in
the sandbox. What the brain chose not to write down is gone once the window slides past it.
"""
from __future__ import annotations

from typing import Any, Sequence

from harnesses.contexts.window import WindowContext
from harnesses.messages import with_cache_breakpoint
from harnesses.contexts.vocabulary import MEMORY_APPEND, MEMORY_WRITE
from sandboxes.base import ToolResult
from sandboxes.tools import ToolError, ToolSpec, object_schema, validate_input
from stores import events as logged
from stores.base import Event

MEMORY_HEADER = "[your memory file]"  # the line above the file: what the brain writes is shown as it wrote it

MEMORY_TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in [
    ToolSpec(MEMORY_WRITE, "Replace your memory file with `content`. The file is shown at the top of every later "
             "context, while older turns are not: write down what you will still need.",
             object_schema(["content"], content={"type": "string"}), idempotent=True),
    ToolSpec(MEMORY_APPEND, "Add `text` at the end of your memory file (a new line).",
             object_schema(["text"], text={"type": "string", "minLength": 1}), idempotent=False),
]}


class MemoryContext(WindowContext):
    name = "memory"
    tools = tuple(MEMORY_TOOLS.values())

    def __init__(self, turns: int = 6, max_chars: int = 100_000):
        super().__init__(turns)
        self.max_chars = max_chars

    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        messages = self.view(events)
        memory = current_memory(events)
        if memory is not None:
            task = messages[0]
            messages[0] = {**task, "content": [*task["content"], {"type": "text", "text": f"{MEMORY_HEADER}\n{memory}"}]}
        return with_cache_breakpoint(messages)

    async def run_tool(self, name: str, input: Any, events: Sequence[Event]) -> ToolResult:
        try:
            validate_input(name, input, MEMORY_TOOLS)
        except ToolError as exc:
            return ToolResult(str(exc), True)
        after = _apply(current_memory(events) or "", name, input)
        if len(after) > self.max_chars:
            return ToolResult(f"{name}: the memory file would hold {len(after)} characters; it holds at most {self.max_chars}", True)
        return ToolResult(f"memory file now {len(after)} characters", False)


def current_memory(events: Sequence[Event]) -> str | None:
    """The memory file as the successful memory_write and memory_append calls left it, if any."""
    ok = {result.tool_use_id for result in logged.ToolResult.all_in(events) if not result.is_error}
    memory = None
    for call in logged.ToolCall.all_in(events):
        if call.name in MEMORY_TOOLS and call.tool_use_id in ok:
            memory = _apply(memory or "", call.name, call.input)
    return memory


def _apply(memory: str, name: str, input: dict) -> str:
    return input["content"] if name == MEMORY_WRITE else f"{memory}{input['text']}\n"
