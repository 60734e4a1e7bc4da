"""The Messages API's event stream read and bounded: what one streamed attempt's events make, or ProtocolError.

`MessageBuilder` assembles a message from the SDK's raw stream events and names the first one that breaks the
protocol; `bound_events` stops an endless event (one line, or lines without a blank one) by its size before the
SDK's decoder holds it (docs/bounds.md).
"""
from __future__ import annotations

import json
import weakref
from typing import Any

from harnesses.base import ModelError, Usage
from sandboxes.tools import MAX_INPUT_DEPTH, nested_deeper_than

MAX_RESPONSE_CHARS = 4_000_000  # text and tool input of one response together
# One server-sent event (or a body that is not a stream), which the SDK's decoder holds until it ends, adding each
# line to what it holds (a copy each time: its cost grows with lines times bytes). The API's events are a few
# hundred bytes in two lines; a whole reply of 128k output tokens, JSON-escaped, in one delta would still fit.
MAX_EVENT_BYTES = 1 << 20
MAX_EVENT_LINES = 32
_EVENT_ENDS = (b"\n\n", b"\r\r", b"\r\n\r\n")  # a blank line, as the SDK's SSE decoder finds them
MAX_TOOL_INPUT_DEPTH = MAX_INPUT_DEPTH  # deeper tool input could not be logged or validated


class ProtocolError(ModelError):
    """The server's stream broke the Messages API's protocol (retried, as a server error would be)."""



async def bound_events(response: Any) -> None:
    """Make `response`'s body raise ProtocolError once one event (what lies between two blank lines) grows past
    MAX_EVENT_BYTES or MAX_EVENT_LINES, before the SDK sees it: one endless line, or lines without a blank one,
    would otherwise hold memory and the event loop until the attempt's deadline. An AWS eventstream (Bedrock's) is
    bounded by each frame's declared length instead."""
    chunks, owner = type(response).aiter_bytes, weakref.ref(response)  # no cycle: the response holds `bounded`

    framed = response.headers.get("content-type", "").startswith(EVENTSTREAM)

    async def bounded(*args: Any, **kwargs: Any) -> Any:
        event = _OpenFrame() if framed else _OpenEvent()
        async for chunk in chunks(owner(), *args, **kwargs):
            event.feed(chunk)
            yield chunk

    response.aiter_bytes = bounded  # what the SDK reads, after the transport has decoded the body


class _OpenEvent:
    """The bytes and lines of the event a stream has open: those since its last blank line."""

    def __init__(self) -> None:
        self.bytes = self.lines = 0
        self.tail = b""  # the last bytes seen, for a blank line split across two chunks

    def feed(self, chunk: bytes) -> None:
        seen = self.tail + chunk
        end = max(seen.rfind(mark) + len(mark) if mark in seen else 0 for mark in _EVENT_ENDS)
        if end:
            self.bytes, self.lines = len(seen) - end, _line_breaks(seen[end:])
        else:
            self.bytes, self.lines = self.bytes + len(chunk), self.lines + _line_breaks(chunk)
        self.tail = seen[-3:]
        if self.bytes > MAX_EVENT_BYTES:
            violation(f"an event of more than {MAX_EVENT_BYTES} bytes (no blank line ends it)")
        if self.lines > MAX_EVENT_LINES:
            violation(f"an event of more than {MAX_EVENT_LINES} lines (no blank line ends it)")


EVENTSTREAM = "application/vnd.amazon.eventstream"  # Bedrock's stream: length-prefixed binary frames, not lines


class _OpenFrame:
    """Where an AWS eventstream is in its current frame: each frame's first four bytes are its length, so one longer
    than MAX_EVENT_BYTES is refused before its body is read."""

    def __init__(self) -> None:
        self.left, self.prelude = 0, b""  # bytes of the open frame still to come; its length so far

    def feed(self, chunk: bytes) -> None:
        while chunk:
            if self.left:
                step = min(self.left, len(chunk))
                self.left, chunk = self.left - step, chunk[step:]
                continue
            need = 4 - len(self.prelude)
            self.prelude, chunk = self.prelude + chunk[:need], chunk[need:]
            if len(self.prelude) == 4:
                length = int.from_bytes(self.prelude, "big")
                if length > MAX_EVENT_BYTES:
                    violation(f"an eventstream frame of {length} bytes (more than {MAX_EVENT_BYTES})")
                self.left, self.prelude = max(length - 4, 0), b""


def _line_breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r")  # \r\n counts twice: the API's events have two lines


class MessageBuilder:
    """Assembles a message from raw stream events; the first event that breaks the protocol is a ProtocolError
    naming it. Event types it does not know (ping, newer ones) are skipped, as the API asks of clients."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, str] = {}
        self.open: set[int] = set()
        self.stop_reason: str | None = None
        self.model = ""
        self.started = self.stopped = False
        self.chars = 0
        self._usage: dict[str, int] = {}
        self.context_management: dict[str, Any] | None = None  # what server-side context management applied

    def add(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        try:
            self._add(kind, event)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a field missing or of the wrong kind
            raise ProtocolError(f"protocol violation: a malformed {kind} event ({type(exc).__name__}: {exc})") from None

    def _add(self, kind: Any, event: Any) -> None:
        if kind not in _EVENTS:
            return
        if self.stopped:
            violation(f"{kind} after message_stop")
        if kind == "message_start":
            if self.started:
                violation("a second message_start")
            self.started, self.model = True, event.message.model
            self._usage.update(_usage_fields(event.message.usage))
        elif not self.started:
            violation(f"{kind} before message_start")
        elif kind == "content_block_start":
            self._start_block(event.index, event.content_block.model_dump(exclude_none=True))
        elif kind == "content_block_delta":
            self._delta(self._open_block(event.index, kind), event.index, event.delta)
        elif kind == "content_block_stop":
            self._open_block(event.index, kind)
            self.open.discard(event.index)
            if event.index in self.partial_json:
                self.blocks[event.index]["input"] = _tool_input(event.index, self.partial_json.pop(event.index))
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self.context_management = _plain(getattr(event, "context_management", None))
            self._usage.update(_usage_fields(event.usage))
        else:
            self.stopped = True

    def _start_block(self, index: int, block: dict[str, Any]) -> None:
        if index in self.blocks:
            violation(f"content_block_start for block {index}, which has started already")
        if block.get("type") == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
            violation(f"tool_use block {index} without a string id and name")
        self.blocks[index] = block
        self.open.add(index)

    def _open_block(self, index: int, kind: str) -> dict[str, Any]:
        if index not in self.open:
            violation(f"{kind} for block {index}, which is {'stopped' if index in self.blocks else 'not started'}")
        return self.blocks[index]

    def _delta(self, block: dict[str, Any], index: int, delta: Any) -> None:
        """Each delta type adds to the one field of the one block type it belongs to (DELTAS)."""
        if delta.type not in DELTAS:
            return  # a newer delta type: skipped, as unknown events are
        kind, field = DELTAS[delta.type]
        if block["type"] != kind:
            violation(f"{'an' if delta.type[0] in 'aeiou' else 'a'} {delta.type} for {block['type']} block {index}")
        if delta.type == "input_json_delta":
            self.partial_json[index] = self.partial_json.get(index, "") + delta.partial_json
            self._count(len(delta.partial_json))
        elif delta.type == "compaction_delta":  # the summary arrives whole, with what to send back beside it
            block.update({k: v for k, v in (("content", delta.content), ("encrypted_content", delta.encrypted_content)) if v is not None})
            self._count(len(delta.content or ""))
        else:
            text = getattr(delta, field)
            block[field] = (block.get(field) or "") + text if field != "signature" else text
            self._count(len(text))

    def _count(self, chars: int) -> None:
        self.chars += chars
        if self.chars > MAX_RESPONSE_CHARS:
            violation(f"the response holds more than {MAX_RESPONSE_CHARS} characters")

    def check_complete(self) -> None:
        """After message_stop: a message a turn can end on."""
        if self.open:
            violation(f"message_stop while block(s) {sorted(self.open)} never stopped")
        if not self.blocks:
            violation("an empty message (no content block before message_stop)")
        try:  # JSON may escape a lone surrogate (\udc80), which is not text: no log could hold it
            json.dumps(self.content, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            violation(f"the message holds a lone surrogate ({exc.object[exc.start:exc.end]!a}), which is not text")

    @property
    def content(self) -> list[dict[str, Any]]:
        keep = {"text": ("type", "text"), "tool_use": ("type", "id", "name", "input"),
                "thinking": ("type", "thinking", "signature"), "redacted_thinking": ("type", "data")}
        return [{k: v for k, v in block.items() if k in keep.get(block["type"], block)} for _, block in sorted(self.blocks.items())]

    def usage(self) -> Usage:
        return Usage(**{k: self._usage.get(k, 0) for k in Usage.__dataclass_fields__})


# delta type -> (the block type it belongs to, the field it adds to); tool input is JSON, built at the block's stop
DELTAS = {
    "text_delta": ("text", "text"), "input_json_delta": ("tool_use", "partial_json"),
    "thinking_delta": ("thinking", "thinking"), "signature_delta": ("thinking", "signature"),
    "compaction_delta": ("compaction", "content"),
}
_EVENTS = frozenset({"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"})


def _plain(value: Any) -> dict[str, Any] | None:
    """An SDK model as plain JSON data (None stays None)."""
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def violation(what: str) -> None:
    raise ProtocolError(f"protocol violation: {what}")


def _tool_input(index: int, text: str) -> dict[str, Any]:
    """A tool_use block's input from its JSON, or ProtocolError: not JSON, not an object, or too deep to log."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError) as exc:
        violation(f"tool_use block {index}'s input is not valid JSON ({type(exc).__name__}: {str(exc)[:200]})")
    if not isinstance(value, dict):
        violation(f"tool_use block {index}'s input is a JSON {type(value).__name__}, not an object")
    if nested_deeper_than(value, MAX_TOOL_INPUT_DEPTH):
        violation(f"tool_use block {index}'s input is nested more than {MAX_TOOL_INPUT_DEPTH} levels deep")
    return value


def _usage_fields(usage: Any) -> dict[str, int]:
    """The counts of a usage object, and what its compaction iterations (BetaUsage.iterations) took besides."""
    fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    counts = {f: value for f in fields if _count_of(value := getattr(usage, f, None))}
    compactions = [i for i in getattr(usage, "iterations", None) or [] if getattr(i, "type", None) == "compaction"]
    for side in ("input", "output") if compactions else ():
        counts[f"compaction_{side}_tokens"] = sum(v for i in compactions if _count_of(v := getattr(i, f"{side}_tokens", None)))
    return counts


def _count_of(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

