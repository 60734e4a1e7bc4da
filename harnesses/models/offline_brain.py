"""The offline brain: deterministic stand-ins for a model (solver policies) that decide only from the messages they get.

A policy sees a `Conversation` (the request's messages, nothing else) and returns an action. If a
context strategy drops a tool result, the policy no longer sees it and must fetch it again. What a
strategy hid, the brain learns only from the forms of harnesses/contexts/vocabulary.py: it knows no
strategy. The scripted model and the emulator answer with `answer`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

from harnesses.contexts.vocabulary import (
    LOG_TOOLS, MEMORY_APPEND, MEMORY_NOTES, MEMORY_TOOL, NOTES_END, OMITTED, SEARCH_EVENTS, SESSION_TOOLS, SUMMARIZE,
    CallRecord, cleared, read_calls, read_events, read_task, record_line, task_line,
)
from harnesses.hands import NEW_SANDBOX
from sandboxes.tools import TOOLS
from stores.base import Event
from stores.events import ToolCall, ToolResult


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


Action = Union[Call, Reply, Sequence[Call]]


@dataclass(frozen=True, slots=True)
class Exchange:
    """A tool call the conversation shows, and its result if the conversation shows that too."""

    id: str
    name: str
    input: dict[str, Any]
    output: str | None
    is_error: bool
    cleared: bool = False  # the context shows the call had a result, but no longer the result itself
    renewed: bool = False  # the call ran in a fresh sandbox that replaced a lost one (its output says so first)


SANDBOX_LOST = "sandbox running this tool was lost"  # in what the harness tells the model (harnesses/hands.py)
SUMMARY_HEADER = "[summary of the session so far, one tool call per line]"  # the brain's own calls blocks begin so
SUMMARY_OUTPUT_CHARS = 600  # an offline model's summary keeps this much of each tool output: compaction is lossy


class Conversation:
    def __init__(self, messages: Sequence[Mapping[str, Any]], hands: Sequence[str] = ()):
        self.messages = messages
        self.hands = tuple(hands)  # the hands a tool call may name (the tools' `hand` input), if more than one
        self.user_texts = [b["text"] for m in messages if m["role"] == "user" for b in _blocks(m) if b.get("type") == "text"]
        # what a server compaction summarized (every message before its block is dropped, the task's too)
        self.compacted = [b["content"] for m in messages for b in _blocks(m)
                          if b.get("type") == "compaction" and isinstance(b.get("content"), str)]
        results = {
            b["tool_use_id"]: b for m in messages if m["role"] == "user" for b in _blocks(m) if b.get("type") == "tool_result"
        }
        shown = [
            _exchange(b, results.get(b["id"]))
            for m in messages if m["role"] == "assistant" for b in _blocks(m) if b.get("type") == "tool_use"
        ]
        self.shown = shown  # the tool calls in the messages themselves
        # summaries, notes (the memory tool's read back too), hidden turns: calls it made
        blocks = [read_calls(text) for text in [*self.compacted, *self.user_texts, *_read_notes(shown)]]
        self.noted = any(blocks)
        summarized = [_recorded(r, f"summary_{i}") for block in blocks for i, r in enumerate(block)]
        recalled = [e for r in shown if r.name in LOG_TOOLS and r.output for e in _from_recall(r.output)]
        exchanges = summarized + [e for e in recalled if e.id not in {s.id for s in shown}] + shown
        exchanges = [_notice_taken_in(e) for e in exchanges]
        # A sandbox that was lost took every earlier change with it, and new hands start from the task's
        # setup again: a sensible model keeps what it saw before it changed anything, and redoes the rest
        # (a sandbox's lifetime ends with a call lost with it, or just before a call that ran in new hands)
        lost = [i for i, e in enumerate(exchanges) if e.is_error and SANDBOX_LOST in (e.output or "")]
        ends = sorted({(i, i + 1) for i in lost} | {(i, i) for i, e in enumerate(exchanges) if e.renewed})
        starts = [0, *(next_start for _, next_start in ends)]
        lifetimes = [exchanges[start:end] for start, (end, _) in zip(starts, ends)]  # of the sandboxes lost
        seen = [e for lifetime in lifetimes for e in itertools.takewhile(_observes, lifetime)]
        self.exchanges = seen + exchanges[starts[-1]:]

    @property
    def prompt(self) -> str:
        """The task: the first user message, or what the compaction summary that stands for it restates."""
        first = _blocks(self.messages[0])[:1] if self.messages else []
        starts_compacted = first and first[0].get("type") == "compaction" and isinstance(first[0].get("content"), str)
        restated = read_task(first[0]["content"]) if starts_compacted else None
        return restated or (self.user_texts[0] if self.user_texts else "")

    @property
    def last(self) -> Exchange | None:
        return self.exchanges[-1] if self.exchanges else None

    def results(self, name: str, **match: Any) -> list[Exchange]:
        """Exchanges with a visible result for tool `name` whose input contains `match`."""
        return [
            e for e in self.exchanges
            if e.name == name and e.output is not None and all(e.input.get(k) == v for k, v in match.items())
        ]

    def output(self, name: str, **match: Any) -> str | None:
        """The latest successful output of `name` with matching input, if the context still shows it."""
        ok = [e for e in self.results(name, **match) if not e.is_error]
        return ok[-1].output if ok else None

    def checked(self, name: str, **match: Any) -> bool:
        """Did a call of `name` with matching input succeed, even if the context no longer shows its result?"""
        return any(e.name == name and not e.is_error and (e.output is not None or e.cleared)
                   and all(e.input.get(k) == v for k, v in match.items()) for e in self.exchanges)

    def succeeded(self, name: str, **match: Any) -> bool:
        return self.output(name, **match) is not None


Policy = Callable[[Conversation], Action]
PolicyBook = Callable[[Sequence[Mapping[str, Any]]], Policy | None]


def load_policies(book: PolicyBook | str) -> PolicyBook:
    """A policy book, or the import path of a function that builds one (`experiments.tasks.policy_book`)."""
    if not isinstance(book, str):
        return book
    import importlib

    module, _, name = book.rpartition(".")
    try:
        build = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"policies={book!r}: not an importable function ({exc}); e.g. experiments.tasks.policy_book") from None
    return build()


def _blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _observes(exchange: Exchange) -> bool:
    """A successful call of a tool that changes nothing: what it saw, any fresh sandbox shows again."""
    return not exchange.is_error and exchange.name in TOOLS and TOOLS[exchange.name].read_only


def _exchange(use: Mapping[str, Any], result: Mapping[str, Any] | None) -> Exchange:
    text = _text(result)
    hidden = cleared(text)
    is_error = bool((result or {}).get("is_error"))
    return Exchange(use["id"], use["name"], use.get("input", {}), None if hidden else text, is_error, hidden)


def _notice_taken_in(exchange: Exchange) -> Exchange:
    """A sensible model takes in that the call ran in new hands, and reads the output after the notice."""
    if not (exchange.output or "").startswith(NEW_SANDBOX):
        return exchange
    return dataclasses.replace(exchange, output=exchange.output.partition("\n")[2], renewed=True)


def _text(block: Mapping[str, Any] | None) -> str | None:
    if block is None:
        return None
    content = block.get("content", "")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def answer(book: PolicyBook, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The content blocks an offline model answers `messages` with, from the task's solver policy; `tools` are
    the request's tool definitions (their names, and the hands their `hand` input may name).

    Tool-use ids derive from the conversation, so the same conversation always gets the same ids, and
    they stay unique in a session whose context shows only part of it (a window, a summary).
    """
    offered = [t.get("name") for t in tools]
    conversation = Conversation(messages, offered_hands(tools))
    if conversation.user_texts and conversation.user_texts[-1] == SUMMARIZE:
        return [{"type": "text", "text": summary(conversation)}]
    policy = book(messages)
    action = policy(conversation) if policy else Reply(
        f"No solver policy is known for the task {conversation.prompt[:80]!r}."
    )
    if isinstance(action, Reply):
        return [{"type": "text", "text": action.text}]
    action = _remember_first(conversation, _recall_first(conversation, action, offered), offered)
    action = _memory_tool_first(conversation, action, offered)
    seen = hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()[:16]
    calls = [action] if isinstance(action, Call) else list(action)
    return [{"type": "tool_use", "id": f"toolu_{seen}_{i}", "name": c.name, "input": c.input} for i, c in enumerate(calls)]


def offered_hands(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hand names a tool's `hand` input takes (the harness adds it to sandbox tools when it gives several)."""
    for tool in tools:
        hand = (tool.get("input_schema") or {}).get("properties", {}).get("hand")
        if isinstance(hand, dict) and isinstance(hand.get("enum"), list):
            return hand["enum"]
    return []


def summary(conversation: Conversation) -> str:
    """An offline model's summary: every tool call it can see, with the head of its output."""
    return "\n".join(_notes(conversation.exchanges, header=True))


def compaction_summary(messages: Sequence[Mapping[str, Any]]) -> str:
    """A server compaction's summary of `messages`: the offline model's summary, restating the task (the server drops
    every message before the summary, the task's too)."""
    conversation = Conversation(messages)
    lines = _notes(conversation.exchanges, header=True)
    return "\n".join([lines[0], task_line(conversation.prompt), *lines[1:]])


def _notes(exchanges: Sequence[Exchange], header: bool) -> list[str]:
    """A calls block (or, without `header`, more lines for one already shown) of the calls that are about the task."""
    lines = [record_line(CallRecord(e.name, e.input, e.is_error, None if e.output is None else e.output[:SUMMARY_OUTPUT_CHARS]))
             for e in exchanges if e.name not in SESSION_TOOLS]
    return [SUMMARY_HEADER, *lines] if header else lines


def _recorded(record: CallRecord, id: str) -> Exchange:
    return Exchange(id, record.tool, record.input, record.output, record.is_error)


def _recall_first(conversation: Conversation, action: Call | Sequence[Call], offered: Sequence[str]) -> Call | Sequence[Call]:
    """With only the latest turns in view and the log searchable, look for an earlier answer before asking the hands."""
    if not isinstance(action, Call) or SEARCH_EVENTS not in offered or not any(OMITTED in t for t in conversation.user_texts):
        return action
    if action.name not in LOG_TOOLS and action.name in TOOLS and TOOLS[action.name].read_only:
        query = f'"name": "{action.name}"'  # every earlier call of this tool, with its result, in one search
        if not conversation.checked(SEARCH_EVENTS, query=query):
            return Call(SEARCH_EVENTS, {"query": query, "limit": 100})
    return action


def _from_recall(text: str) -> list[Exchange]:
    """The tool calls, with their results, in what a log tool returned (an event cut short shows no data object;
    the lines name no schema version, and the fields read here are the same in every one)."""
    shown = [Event(e.get("type"), e["data"]) for e in read_events(text) if isinstance(e.get("data"), dict)]
    results = {r.tool_use_id: r for r in (ToolResult.read(e) for e in shown if e.type == ToolResult.TYPE)}
    calls = [ToolCall.read(e) for e in shown if e.type == ToolCall.TYPE]
    return [
        Exchange(c.tool_use_id, c.name, c.input if c.input is not None else {}, results[c.tool_use_id].output,
                 bool(results[c.tool_use_id].is_error))
        for c in calls if c.tool_use_id in results and c.name not in LOG_TOOLS
    ]


def _remember_first(conversation: Conversation, action: Call | Sequence[Call], offered: Sequence[str]) -> Call | Sequence[Call]:
    """With a memory file, note down what the last few calls showed before the window loses it."""
    if not isinstance(action, Call) or MEMORY_APPEND not in offered:
        return action
    notes = [i for i, e in enumerate(conversation.shown) if e.name == MEMORY_APPEND]
    fresh = [e for e in conversation.shown[notes[-1] + 1 if notes else 0:] if e.name not in SESSION_TOOLS and e.output is not None]
    if len(fresh) < 3:
        return action
    # the first note opens a calls block; later ones add lines to the block the context shows
    return Call(MEMORY_APPEND, {"text": "\n".join(_notes(fresh, header=not notes and not conversation.noted))})


# -- the API's memory tool (memory_20250818): notes in MEMORY_NOTES, kept by the harness -------------------------

_NUMBERED = re.compile(r"^ *\d+\t", re.MULTILINE)  # the line numbers a file's `view` shows (the SDK's memory tool's)


def _read_notes(shown: Sequence[Exchange]) -> list[str]:
    """The notes file as the memory tool's views that the conversation shows read it (line numbers taken off)."""
    return [_NUMBERED.sub("", e.output.partition("\n")[2]) for e in shown
            if not e.is_error and e.output and _memory(e, "view", path=MEMORY_NOTES)]


def _memory_tool_first(conversation: Conversation, action: Call | Sequence[Call], offered: Sequence[str]) -> Call | Sequence[Call]:
    """With the memory tool: in a window that lost earlier turns, read the notes back first; else note down what the
    last few calls showed before the window loses it."""
    if not isinstance(action, Call) or MEMORY_TOOL not in offered:
        return action
    memory = [e for e in conversation.shown if e.name == MEMORY_TOOL]
    has_notes = any(not e.is_error and (_memory(e, "create", "str_replace", path=MEMORY_NOTES)
                                        or _memory(e, "view", path="/memories") and MEMORY_NOTES in (e.output or ""))
                    for e in memory)
    return _read_back(conversation, memory, has_notes) or _note_down(conversation, has_notes) or action


def _read_back(conversation: Conversation, memory: Sequence[Exchange], has_notes: bool) -> Call | None:
    """The notes file when earlier turns are out of view and it is not in view; the directory if not known to hold it."""
    late = any(OMITTED in t for t in conversation.user_texts)
    if not late or any(_memory(e, "view", path=MEMORY_NOTES) for e in memory):
        return None
    if has_notes:
        return Call(MEMORY_TOOL, {"command": "view", "path": MEMORY_NOTES})
    if not any(_memory(e, "view", path="/memories") for e in memory):
        return Call(MEMORY_TOOL, {"command": "view", "path": "/memories"})
    return None


def _note_down(conversation: Conversation, has_notes: bool) -> Call | None:
    """Once three calls with outputs came since the last note: the notes file made, or a str_replace of its end line."""
    shown = conversation.shown
    last = max((i for i, e in enumerate(shown) if e.name == MEMORY_TOOL and not _memory(e, "view")), default=-1)
    fresh = [e for e in shown[last + 1:] if e.name not in SESSION_TOOLS and e.output is not None]
    if len(fresh) < 3:
        return None
    if not has_notes:
        return Call(MEMORY_TOOL, {"command": "create", "path": MEMORY_NOTES,
                                  "file_text": "\n".join([*_notes(fresh, header=True), NOTES_END])})
    return Call(MEMORY_TOOL, {"command": "str_replace", "path": MEMORY_NOTES, "old_str": NOTES_END,
                              "new_str": "\n".join([*_notes(fresh, header=False), NOTES_END])})


def _memory(exchange: Exchange, *commands: str, **match: Any) -> bool:
    """Whether `exchange` is a memory tool call of one of `commands` whose input contains `match`."""
    return (exchange.name == MEMORY_TOOL and exchange.input.get("command") in commands
            and all(exchange.input.get(k) == v for k, v in match.items()))
