"""Claude through the official `anthropic` SDK: streaming, tool use, prompt caching, recorded retries.

Retries are ours, not the SDK's (its max_retries is 0), so that every one is bounded and recorded:
429 (honouring retry-after), 529, 5xx, connection errors, streams cut before message_stop, and streams
that break the protocol (data that is not JSON, events out of order, tool input that is not JSON, an
empty message). A cut or broken stream's partial content is discarded, never returned as a response.
Each attempt has a deadline (`timeout_s`, as well as per read), the call as a whole another (`deadline_s`),
a response holds at most MAX_RESPONSE_CHARS, and one event at most MAX_EVENT_BYTES (an endless line is
stopped by its size): whatever a server sends, a call ends, in bounded memory (docs/bounds.md).
"""
from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import math
import os
import random
import time
import weakref
from typing import Any

from harnesses.base import Model, ModelError, ModelRequest, ModelResponse, Usage
from sandboxes.tools import MAX_INPUT_DEPTH, nested_deeper_than

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# An error event mid-stream arrives on a 200 response: its type says whether to retry.
RETRYABLE_ERRORS = frozenset({"rate_limit_error", "overloaded_error", "api_error", "timeout_error"})


MAX_RESPONSE_CHARS = 4_000_000  # text and tool input of one response together
# One server-sent event (or a body that is not a stream), which the SDK's decoder holds until it ends, adding each
# line to what it holds (a copy each time: its cost grows with lines times bytes). The API's events are a few
# hundred bytes in two lines; a whole reply of 128k output tokens, JSON-escaped, in one delta would still fit.
MAX_EVENT_BYTES = 1 << 20
MAX_EVENT_LINES = 32
_EVENT_ENDS = (b"\n\n", b"\r\r", b"\r\n\r\n")  # a blank line, as the SDK's SSE decoder finds them
MAX_TOOL_INPUT_DEPTH = MAX_INPUT_DEPTH  # deeper tool input could not be logged or validated


class StreamCut(ModelError):
    """The stream ended before message_stop."""


class ProtocolError(ModelError):
    """The server's stream broke the Messages API's protocol (retried, as a server error would be)."""


class AttemptTimeout(ModelError):
    """One attempt took longer than its deadline (a server streaming pings or deltas forever)."""


HTTP_CLIENTS = ("httpx", "aiohttp")  # the SDK's default transport, or its aiohttp one (cheaper with many connections)


class AnthropicModel(Model):
    name = "anthropic"

    def __init__(
        self,
        model: str = "claude-sonnet-4-6",
        base_url: str | None = None,
        api_key_env: str = "ANTHROPIC_API_KEY",
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 600.0,
        seed: int | None = None,
        http: str = "httpx",
        deadline_s: float = 1800.0,
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        for key, value in (("timeout_s", timeout_s), ("deadline_s", deadline_s)):
            if not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise ValueError(f"model.{key}={value!r}; valid: a positive number of seconds")
        if http not in HTTP_CLIENTS:
            raise ValueError(f"model.http={http!r}; valid: {', '.join(HTTP_CLIENTS)}")
        self.http = http
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.max_attempts, self.backoff_base_s, self.backoff_max_s = max_attempts, backoff_base_s, backoff_max_s
        self.timeout_s, self.deadline_s = timeout_s, deadline_s  # per attempt (and per read); per call
        self._jitter = random.Random(seed)
        self._client: Any = None
        self._connecting = asyncio.Lock()

    async def start(self) -> None:
        """Create the client (and whatever it talks to) before the first call is timed."""
        await self._connect()

    async def respond(self, request: ModelRequest) -> ModelResponse:
        client = await self._connect()
        retries: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.deadline_s
        while True:
            attempt = len(retries) + 1
            try:
                return await self._attempt(client, request, tuple(retries), deadline)
            except Exception as exc:
                failure = _failure(exc)
                if failure is None:
                    raise
                wait_s = self._wait_s(attempt, failure.pop("retry_after_s"))
                late = time.monotonic() + wait_s >= deadline
                if not failure["retryable"] or attempt >= self.max_attempts or late:
                    tried = ", ".join(r["error"] for r in retries + [failure])
                    why = f" (deadline_s={self.deadline_s:g} reached)" if late and failure["retryable"] and attempt < self.max_attempts else ""
                    raise ModelError(f"{self.name} gave up after {attempt} attempt(s){why}: {tried}") from None
                failure["wait_ms"] = wait_s * 1000
                retries.append({"attempt": attempt, "at": time.time(), **{k: v for k, v in failure.items() if k != "retryable"}})
                await asyncio.sleep(wait_s)

    async def _attempt(self, client: Any, request: ModelRequest, retries: tuple[dict[str, Any], ...], deadline: float) -> ModelResponse:
        """One streamed attempt, within `timeout_s` and what is left of the call's deadline."""
        limit = min(self.timeout_s, deadline - time.monotonic())
        try:
            return await asyncio.wait_for(self._stream(client, request, retries), max(limit, 0.001))
        except asyncio.TimeoutError:
            raise AttemptTimeout(f"no complete message within {limit:g} s") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _connect(self) -> Any:
        async with self._connecting:
            if self._client is None:
                self._client = await self._new_client()
        return self._client

    async def _new_client(self) -> Any:
        import anthropic

        key, base_url = await self._endpoint()
        transport = anthropic.DefaultAioHttpClient if self.http == "aiohttp" else anthropic.DefaultAsyncHttpxClient
        http = transport(timeout=self.timeout_s, event_hooks={"response": [_bound_events]})
        return anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s, http_client=http)

    async def _endpoint(self) -> tuple[str, str | None]:
        """The API key and base URL the client uses."""
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelError(f"model=anthropic needs an API key in ${self.api_key_env} (or use model=emulator)")
        return key, self.base_url

    def _wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        """retry-after when the server gives one (already parsed: finite, not negative); else full-jitter
        exponential backoff."""
        if retry_after_s is not None:
            return min(retry_after_s, self.backoff_max_s)
        return self._jitter.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))

    async def _stream(self, client: Any, request: ModelRequest, retries: tuple[dict[str, Any], ...]) -> ModelResponse:
        options: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens, "messages": request.messages}
        if request.system:
            options["system"] = request.system
        if request.tools:
            options["tools"] = request.tools
        started = time.perf_counter()
        stream = await client.messages.create(**options, stream=True)
        builder = _MessageBuilder()
        first_token: float | None = None
        async with stream:
            try:
                async for event in stream:
                    if getattr(event, "type", None) == "content_block_delta" and first_token is None:
                        first_token = time.perf_counter()
                    builder.add(event)
            except ValueError as exc:  # the SDK decodes each event's data as JSON
                raise ProtocolError(f"protocol violation: an event's data is not JSON ({exc})") from None
        if not builder.stopped:
            raise StreamCut("the stream ended before message_stop")
        builder.check_complete()
        done = time.perf_counter()
        headers = stream.response.headers
        return ModelResponse(
            content=builder.content, stop_reason=builder.stop_reason or "end_turn", usage=builder.usage(),
            ttft_ms=((first_token or done) - started) * 1000, latency_ms=(done - started) * 1000,
            model=builder.model or self.model, request_id=headers.get("request-id"), retries=retries,
            server_ttft_ms=_number(headers.get("x-emulator-ttft-ms")),
        )


async def _bound_events(response: Any) -> None:
    """Make `response`'s body raise ProtocolError once one event (what lies between two blank lines) grows past
    MAX_EVENT_BYTES or MAX_EVENT_LINES, before the SDK sees it: one endless line, or lines without a blank one,
    would otherwise hold memory and the event loop until the attempt's deadline."""
    chunks, owner = type(response).aiter_bytes, weakref.ref(response)  # no cycle: the response holds `bounded`

    async def bounded(*args: Any, **kwargs: Any) -> Any:
        event = _OpenEvent()
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
            _violation(f"an event of more than {MAX_EVENT_BYTES} bytes (no blank line ends it)")
        if self.lines > MAX_EVENT_LINES:
            _violation(f"an event of more than {MAX_EVENT_LINES} lines (no blank line ends it)")


def _line_breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r")  # \r\n counts twice: the API's events have two lines


class _MessageBuilder:
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
            _violation(f"{kind} after message_stop")
        if kind == "message_start":
            if self.started:
                _violation("a second message_start")
            self.started, self.model = True, event.message.model
            self._usage.update(_usage_fields(event.message.usage))
        elif not self.started:
            _violation(f"{kind} before message_start")
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
            self._usage.update(_usage_fields(event.usage))
        else:
            self.stopped = True

    def _start_block(self, index: int, block: dict[str, Any]) -> None:
        if index in self.blocks:
            _violation(f"content_block_start for block {index}, which has started already")
        if block.get("type") == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
            _violation(f"tool_use block {index} without a string id and name")
        self.blocks[index] = block
        self.open.add(index)

    def _open_block(self, index: int, kind: str) -> dict[str, Any]:
        if index not in self.open:
            _violation(f"{kind} for block {index}, which is {'stopped' if index in self.blocks else 'not started'}")
        return self.blocks[index]

    def _delta(self, block: dict[str, Any], index: int, delta: Any) -> None:
        if delta.type == "text_delta":
            if block["type"] != "text":
                _violation(f"a text_delta for {block['type']} block {index}")
            block["text"] = block.get("text", "") + delta.text
            self._count(len(delta.text))
        elif delta.type == "input_json_delta":
            if block["type"] != "tool_use":
                _violation(f"an input_json_delta for {block['type']} block {index}")
            self.partial_json[index] = self.partial_json.get(index, "") + delta.partial_json
            self._count(len(delta.partial_json))

    def _count(self, chars: int) -> None:
        self.chars += chars
        if self.chars > MAX_RESPONSE_CHARS:
            _violation(f"the response holds more than {MAX_RESPONSE_CHARS} characters")

    def check_complete(self) -> None:
        """After message_stop: a message a turn can end on."""
        if self.open:
            _violation(f"message_stop while block(s) {sorted(self.open)} never stopped")
        if not self.blocks:
            _violation("an empty message (no content block before message_stop)")
        try:  # JSON may escape a lone surrogate (\udc80), which is not text: no log could hold it
            json.dumps(self.content, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            _violation(f"the message holds a lone surrogate ({exc.object[exc.start:exc.end]!a}), which is not text")

    @property
    def content(self) -> list[dict[str, Any]]:
        keep = {"text": ("type", "text"), "tool_use": ("type", "id", "name", "input")}
        return [{k: v for k, v in block.items() if k in keep.get(block["type"], block)} for _, block in sorted(self.blocks.items())]

    def usage(self) -> Usage:
        return Usage(**{k: self._usage.get(k, 0) for k in Usage.__dataclass_fields__})


_EVENTS = frozenset({"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"})


def _violation(what: str) -> None:
    raise ProtocolError(f"protocol violation: {what}")


def _tool_input(index: int, text: str) -> dict[str, Any]:
    """A tool_use block's input from its JSON, or ProtocolError: not JSON, not an object, or too deep to log."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError) as exc:
        _violation(f"tool_use block {index}'s input is not valid JSON ({type(exc).__name__}: {str(exc)[:200]})")
    if not isinstance(value, dict):
        _violation(f"tool_use block {index}'s input is a JSON {type(value).__name__}, not an object")
    if nested_deeper_than(value, MAX_TOOL_INPUT_DEPTH):
        _violation(f"tool_use block {index}'s input is nested more than {MAX_TOOL_INPUT_DEPTH} levels deep")
    return value


def _usage_fields(usage: Any) -> dict[str, int]:
    fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {f: value for f in fields if isinstance(value := getattr(usage, f, None), int) and value >= 0}


def _number(value: str | None) -> float | None:
    """A header's number, or None if it is absent or not a finite, non-negative number."""
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds to wait: a number of seconds or an HTTP date (both valid HTTP); None if absent or
    nonsense (nan, inf, negative, unparseable), so the backoff applies instead."""
    if not value or (seconds := _number(value)) is not None:
        return seconds if value else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(when.timestamp() - time.time(), 0.0)


def _failure(exc: Exception) -> dict[str, Any] | None:
    """What a failed attempt was, or None if it is not an API failure (a bug: let it raise)."""
    import anthropic

    if isinstance(exc, anthropic.APIConnectionError) and isinstance(exc.__cause__, ModelError):
        exc = exc.__cause__  # ours, raised while the SDK read the body: since 2.x the SDK wraps what its read raises
    if isinstance(exc, StreamCut):
        return {"error": "stream cut before message_stop", "status": None, "retryable": True, "retry_after_s": None}
    if isinstance(exc, (ProtocolError, AttemptTimeout)):
        return {"error": str(exc), "status": None, "retryable": True, "retry_after_s": None}
    if isinstance(exc, anthropic.APIStatusError):
        kind = (exc.body or {}).get("error", {}).get("type") if isinstance(exc.body, dict) else None
        kind = kind if isinstance(kind, str) else None
        return {
            "error": f"{exc.status_code} {kind or type(exc).__name__}", "status": exc.status_code,
            "retryable": exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500 or kind in RETRYABLE_ERRORS,
            "retry_after_s": _retry_after_s(exc.response.headers.get("retry-after")),
        }
    if isinstance(exc, anthropic.APIConnectionError) or type(exc).__module__.split(".")[0] in CONNECTION_MODULES:
        return {"error": f"connection: {type(exc).__name__}", "status": None, "retryable": True, "retry_after_s": None}
    return None


CONNECTION_MODULES = ("httpx2", "httpx", "httpcore", "aiohttp")  # whose exceptions are a transport's failures
