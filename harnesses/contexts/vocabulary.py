"""How a context strategy shows what it hid: the one vocabulary the offline brain reads.

A strategy chooses what of the session log enters the model's context. Whatever it leaves out, it shows
(if at all) in these forms only. The offline brain (harnesses/models/offline_brain.py) sees nothing but
a request's messages and knows no strategy: it reads these forms, so a new strategy that uses them works
with the scripted model and the emulator unchanged. A real model reads the same text as plain prose.

1. A cleared result: a tool_result whose content starts with `CLEARED`, or is `API_CLEARED` (the placeholder the
   API's own context editing, emulated, puts in: harnesses/emulator/context_edits.py). The call ran; its output is
   not shown (the brain calls the tool again if it needs the output).
2. An omission note: a user text containing `OMITTED` ("3 earlier turn(s) are not shown"). Turns are
   not shown at all; with `SEARCH_EVENTS` offered, the brain searches the log before redoing a read.
3. A calls block, `calls_block(header, records)`: a user text whose first line is a bracketed header and
   each further line one call record, a JSON object {"tool", "input", "is_error", "output"} (`output`
   null: the call ran, its output is not kept). The brain takes each record as a call it made. What the
   brain writes itself (a summary, notes) is a calls block too, so a strategy may show it back as is.
4. Recalled events: the output of `GET_EVENTS` or `SEARCH_EVENTS`, one `event_line` per logged event;
   a tool.call with its tool.result shows that call again.
5. The summary request: a strategy that wants the session summarized sends `SUMMARIZE` as the last
   user text; the brain answers with a calls block. A summary that replaces the task too (the API's server
   compaction drops every message before its `compaction` block) restates it in a `task_line` among its records.
6. Session tools, by name, for a strategy that offers them (it answers them itself, from the log):
   `GET_EVENTS(start, stop)` and `SEARCH_EVENTS(query, limit)` read the log, `MEMORY_WRITE(content)` and
   `MEMORY_APPEND(text)` keep a notes file. The brain uses those offered and leaves them out of its notes.
7. The API's memory tool, `MEMORY_TOOL` (`{"type": "memory_20250818", "name": "memory"}`): files under
   /memories the harness keeps in the log. The brain keeps its notes in `MEMORY_NOTES`, a calls block that ends
   with the `NOTES_END` line (so a note is added by one str_replace of that line), and reads it back with `view`.

`estimate_tokens` is the one token estimate the strategies' thresholds and the offline models share.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

CLEARED = "[tool result cleared"
API_CLEARED = "[cleared to save context]"  # the emulated API's own placeholder for a cleared tool result
OMITTED = "earlier turn(s)"
SUMMARIZE = ("Summarize this session so far for your own later use: what you did, what you found, and every "
             "fact you will still need. The summary replaces the conversation up to here.")
GET_EVENTS, SEARCH_EVENTS = "get_events", "search_events"
MEMORY_WRITE, MEMORY_APPEND = "memory_write", "memory_append"
MEMORY_TOOL, MEMORY_NOTES, NOTES_END = "memory", "/memories/notes.md", "[end of notes]"
LOG_TOOLS = (GET_EVENTS, SEARCH_EVENTS)
SESSION_TOOLS = (*LOG_TOOLS, MEMORY_WRITE, MEMORY_APPEND, MEMORY_TOOL)  # about the session itself, not the task


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One tool call as a calls block lists it; `output` None: it ran, its output is not kept."""

    tool: str
    input: dict[str, Any]
    is_error: bool
    output: str | None


def record_line(record: CallRecord) -> str:
    return json.dumps({"tool": record.tool, "input": record.input, "is_error": record.is_error, "output": record.output})


def calls_block(header: str, records: Sequence[CallRecord]) -> str:
    """A calls block: `header` (a bracketed line, e.g. "[12 earlier turn(s), one tool call per line]"), then the records."""
    if not (header.startswith("[") and header.endswith("]") and "\n" not in header):
        raise ValueError(f"a calls block's header is one bracketed line, e.g. '[earlier calls]'; got {header!r}")
    return "\n".join([header, *(record_line(r) for r in records)])


def read_calls(text: str) -> list[CallRecord]:
    """The call records of a calls block; none if `text` is not one (a real model's prose summary, a note)."""
    if not text.startswith("["):
        return []
    found = []
    for line in text.splitlines()[1:]:
        try:
            entry = json.loads(line)
            found.append(CallRecord(entry["tool"], entry["input"], entry["is_error"], entry["output"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def cleared(text: str | None) -> bool:
    """Whether a tool result's text is a cleared one (a strategy's stub, or the API's placeholder)."""
    return text is not None and (text.startswith(CLEARED) or text == API_CLEARED)


def task_line(task: str) -> str:
    """The line of a calls block that restates the task (read_calls skips it: it is no call record)."""
    return json.dumps({"task": task})


def read_task(text: str) -> str | None:
    """The task a calls block restates, if it does."""
    for line in text.splitlines()[1:] if text.startswith("[") else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("task"), str):
            return entry["task"]
    return None


def event_line(position: int, type: str, data: Any) -> str:
    """One recalled event, as a log tool shows it."""
    return json.dumps({"position": position, "type": type, "data": data})


def read_events(text: str) -> list[dict[str, Any]]:
    """The events a log tool's output shows (lines that are not JSON are skipped)."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def estimate_tokens(payload: Any) -> int:
    """About four characters of JSON per token: the one estimate every offline model and threshold uses."""
    return max(1, len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)) // 4)
