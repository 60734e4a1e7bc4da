"""What every request rule is made of: the error it raises, the Rule record naming its source, and the Request
the rules read (what several of them need, worked out once)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from harnesses.emulator.catalog import ModelLimits
from harnesses.emulator.context_edits import Edited, edited_prompt
from harnesses.emulator.schema import tags


class RequestError(Exception):
    """An error answer in the API's shape: HTTP status, `error.type` and message (and the rule that found it)."""

    def __init__(self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, dict(headers or {})
        self.rule: str | None = None


def invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_request_error", message)


def unknown_tag(path: str, tag: Any, expected: Iterable[str]) -> RequestError:
    """The API's error for a tagged union (a block, a source, a tool, a config) whose `type` is none of its tags."""
    return invalid(f"{path}: Input tag '{tag}' found using 'type' does not match any of the expected tags: {tags(expected)}")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    check: Callable[[Request], None]
    source: str  # the page (or SDK type) that states it
    loose: bool  # checked with strict validation off too: the emulator cannot answer a request that breaks it


def rule(source: str, loose: bool = False) -> Callable[[Callable[[Request], None]], Callable[[Request], None]]:
    """Mark a check as a rule, stating where the API documents it."""
    def mark(check: Callable[[Request], None]) -> Callable[[Request], None]:
        check.rule = Rule(check.__name__, check, source, loose)  # type: ignore[attr-defined]
        return check
    return mark


class Block(NamedTuple):  # a tuple: a request has hundreds, made for every call
    message: int  # the index of its message
    index: int  # its index in the message's content
    role: str
    kind: str | None  # its `type` (None if it is not an object with a string type)
    block: Any  # as the request has it (a string content is one text block)

    @property
    def path(self) -> str:
        """As error messages name it: messages.3.content.1"""
        return f"messages.{self.message}.content.{self.index}"


@dataclass(slots=True)
class Turn:
    """Consecutive messages of one role, which the API combines into one turn."""

    role: str
    first: int  # the index of its first message
    blocks: list[Block] = field(default_factory=list)
    uses: list[Block] = field(default_factory=list)  # its tool_use blocks
    results: list[Block] = field(default_factory=list)  # its tool_result blocks


@dataclass(slots=True)
class _Index:
    by_message: list[list[Block]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    by_kind: dict[str | None, list[Block]] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    marked: list[Block] = field(default_factory=list)  # the blocks that have a cache_control key, or may hold one


class Request:
    """One request as the rules read it. A rule may rely on every rule before it in validation.RULES having passed.

    `beta`: a beta request (`?beta=true`, or an anthropic-beta header), whose fields, blocks and tools are the beta
    params' (harnesses/emulator/schema.py)."""

    def __init__(self, body: dict[str, Any], headers: Mapping[str, str], models: Mapping[str, ModelLimits], endpoint: str,
                 beta: bool = False):
        self.body, self.headers, self.models, self.endpoint = body, headers, models, endpoint
        self.betas = tuple(v.strip() for v in headers.get("anthropic-beta", "").split(",") if v.strip())
        self.beta = beta or bool(self.betas)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.body.get("tools") or []

    @property
    def limits(self) -> ModelLimits | None:
        return self.models.get(self.body.get("model"))

    @property
    def by_message(self) -> list[list[Block]]:
        """Each message's content blocks."""
        return self._index.by_message

    @property
    def blocks(self) -> list[Block]:
        """Every content block of every message, in order."""
        return self._index.blocks

    @property
    def turns(self) -> list[Turn]:
        """The messages by turn: consecutive messages of one role are one turn, as the API combines them."""
        return self._index.turns

    def of_type(self, kind: str | None) -> list[Block]:
        """The content blocks of type `kind`, in order."""
        return self._index.by_kind.get(kind, [])

    @property
    def kinds(self) -> Iterable[str | None]:
        """The types the content blocks have."""
        return self._index.by_kind.keys()

    @functools.cached_property
    def cache_marks(self) -> list[tuple[str, Any]]:
        """Every cache_control in prefix order (tools, system, messages; a tool result's own blocks after it; the
        top-level one, which marks the last block, at the end), with the path errors name it by."""
        system = self.body.get("system")
        marks = _marked("tools", self.tools) + _marked("system", system if isinstance(system, list) else [])
        for b in self._index.marked:
            if b.block.get("cache_control") is not None:
                marks.append((b.path, b.block["cache_control"]))
            if b.kind == "tool_result" and isinstance(b.block.get("content"), list):
                marks += _marked(f"{b.path}.content", b.block["content"])
        if self.body.get("cache_control") is not None:
            marks.append(("", self.body["cache_control"]))
        return marks

    @functools.cached_property
    def _index(self) -> _Index:
        """Every block, by message, by type and by turn, found in one pass (validation's main cost is its passes)."""
        index, turn = _Index(), None
        for i, message in enumerate(self.messages):
            role, content = message["role"], message["content"]
            if turn is None or turn.role != role:
                turn = Turn(role, i)
                index.turns.append(turn)
            blocks = []
            for k, b in enumerate(_as_blocks(content)):
                block = Block(i, k, role, _kind(b), b)
                kind = block.kind
                blocks.append(block)
                index.by_kind.setdefault(kind, []).append(block)
                if kind == "tool_use":
                    turn.uses.append(block)
                elif kind == "tool_result":
                    turn.results.append(block)
                if kind is not None and ("cache_control" in b or kind == "tool_result" and isinstance(b.get("content"), list)):
                    index.marked.append(block)  # a tool result's content may hold marks of its own
            index.by_message.append(blocks)
            index.blocks += blocks
            turn.blocks += blocks
        return index

    @functools.cached_property
    def edited(self) -> Edited:
        """The prompt the model reads: from the last compaction block on, with the context edits applied
        (harnesses/emulator/context_edits.py); the body itself for a request that is not a beta one (only those may
        carry context management), which spares every other request a pass over its blocks."""
        return edited_prompt(self.body) if self.beta else Edited(self.body)

    @property
    def edits(self) -> list[dict[str, Any]]:
        """context_management's edits (none for a request without it)."""
        config = self.body.get("context_management")
        return (config.get("edits") or []) if isinstance(config, dict) else []

    @property
    def thinking(self) -> bool:
        """Whether thinking is on: enabled, or adaptive."""
        return (self.body.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def _as_blocks(content: Any) -> list[Any]:
    """A message's content as blocks: a string is one text block (an empty one, none)."""
    return ([{"type": "text", "text": content}] if content else []) if isinstance(content, str) else content


def _kind(block: Any) -> str | None:
    kind = block.get("type") if isinstance(block, dict) else None
    return kind if isinstance(kind, str) else None


def _marked(path: str, items: list[Any]) -> list[tuple[str, Any]]:
    """The (path.index, cache_control) of the items that set one (null sets none)."""
    return [(f"{path}.{i}", item["cache_control"]) for i, item in enumerate(items)
            if isinstance(item, dict) and item.get("cache_control") is not None]
