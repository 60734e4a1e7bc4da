"""Claude through the official `anthropic` SDK: streaming, tool use, prompt caching, recorded retries.

Retries are ours, not the SDK's (its max_retries is 0), so that every one is bounded and recorded:
429 (honouring retry-after), 529, 5xx, connection errors, streams cut before message_stop, and streams
that break the protocol (data that is not JSON, events out of order, tool input that is not JSON, an
empty message). A cut or broken stream's partial content is discarded, never returned as a response.
Each attempt has a deadline (`timeout_s`, as well as per read), the call as a whole another (`deadline_s`),
a response and each of its events are bounded (harnesses/models/stream.py; an endless line is
stopped by its size): whatever a server sends, a call ends, in bounded memory (docs/bounds.md).

`thinking`, `temperature`, `top_p`, `top_k` and `tool_choice` come from config, are checked when the backend is
built (a config error before a run starts, not a 400 in every session) and go with every turn request, not with a
context strategy's own calls (compaction's summary need not think). Thinking blocks are kept in the response's
content, so the log holds them and the messages built from it pass them back unchanged, as the API requires.
"""
from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import os
import random
import time
from typing import Any, Mapping

from harnesses.base import Model, ModelError, ModelRequest, ModelResponse
from harnesses.models.providers import CLIENTS, new_client
from harnesses.models.stream import MessageBuilder, ProtocolError, bound_events

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# An error event mid-stream arrives on a 200 response: its type says whether to retry.
RETRYABLE_ERRORS = frozenset({"rate_limit_error", "overloaded_error", "api_error", "timeout_error"})


class StreamCut(ModelError):
    """The stream ended before message_stop."""


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
        client: str = "anthropic",
        profile: Mapping[str, Any] | None = None,
        thinking: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        tool_choice: Mapping[str, Any] | None = None,
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        for key, value in (("timeout_s", timeout_s), ("deadline_s", deadline_s)):
            if not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise ValueError(f"model.{key}={value!r}; valid: a positive number of seconds")
        if http not in HTTP_CLIENTS:
            raise ValueError(f"model.http={http!r}; valid: {', '.join(HTTP_CLIENTS)}")
        if client not in CLIENTS:
            raise ValueError(f"model.client={client!r}; valid: {', '.join(CLIENTS)}")
        self.http, self.client, self.profile = http, client, dict(profile or {})
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.max_attempts, self.backoff_base_s, self.backoff_max_s = max_attempts, backoff_base_s, backoff_max_s
        self.timeout_s, self.deadline_s = timeout_s, deadline_s  # per attempt (and per read); per call
        self.turn_options = turn_options(thinking, temperature, top_p, top_k, tool_choice)  # sent with every turn
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
        http = transport(timeout=self.timeout_s, event_hooks={"response": [bound_events]})
        return new_client(self.client, key, base_url, http, self.timeout_s, self.profile)

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
        body = {**self.turn_options, **request.options} if request.purpose == "turn" else dict(request.options)
        _check_budget(body, request.max_tokens)
        if body:  # the SDK does not type every field the API takes (temperature): sent as they are
            options["extra_body"] = body
        started = time.perf_counter()
        if request.betas:
            stream = await client.beta.messages.create(**options, betas=list(request.betas), stream=True)
        else:
            stream = await client.messages.create(**options, stream=True)
        builder = MessageBuilder()
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
            server_ttft_ms=_number(headers.get("x-emulator-ttft-ms")), context_management=builder.context_management,
        )


THINKING_FIELDS = {"enabled": {"budget_tokens", "display"}, "adaptive": {"display"}, "disabled": set()}  # ThinkingConfigParam
THINKING_DISPLAYS = ("summarized", "omitted")
MIN_THINKING_BUDGET = 1024
TOOL_CHOICE_FIELDS = {"auto": {"disable_parallel_tool_use"}, "any": {"disable_parallel_tool_use"},
                      "tool": {"name", "disable_parallel_tool_use"}, "none": set()}  # anthropic.types.ToolChoiceParam
_THINKING_VALID = ("null, {type: enabled, budget_tokens: N >= 1024}, {type: adaptive} (either with display: summarized "
                   "or omitted), or {type: disabled}")
_TOOL_CHOICE_VALID = ("null, {type: auto}, {type: any}, {type: tool, name: TOOL} (each with disable_parallel_tool_use: "
                      "true or false, if wanted), or {type: none}")


def turn_options(thinking: Mapping[str, Any] | None, temperature: float | None, top_p: float | None, top_k: int | None,
                 tool_choice: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Messages API fields a turn request carries, checked as the API checks them (ValueError naming the key and
    what is valid); null ones are not sent. Sources: anthropic.types.ThinkingConfigParam and ToolChoiceParam, and
    https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility."""
    thinking, tool_choice = _plain(thinking), _plain(tool_choice)
    _check_config("thinking", thinking, THINKING_FIELDS, _THINKING_VALID)
    _check_config("tool_choice", tool_choice, TOOL_CHOICE_FIELDS, _TOOL_CHOICE_VALID)
    if thinking and thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not _whole(budget) or budget < MIN_THINKING_BUDGET:
            raise ValueError(f"model.thinking.budget_tokens={budget!r}; valid: a whole number >= {MIN_THINKING_BUDGET}, "
                             "below harness.max_tokens")
    if thinking and thinking.get("display") not in (None, *THINKING_DISPLAYS):
        raise ValueError(f"model.thinking.display={thinking['display']!r}; valid: {', '.join(THINKING_DISPLAYS)}, or null")
    if tool_choice is not None:
        _check_tool_choice(tool_choice)
    for key, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and not (_real(value) and 0 <= value <= 1):
            raise ValueError(f"model.{key}={value!r}; valid: a number from 0 to 1, or null")
    if top_k is not None and not (_whole(top_k) and top_k >= 0):
        raise ValueError(f"model.top_k={top_k!r}; valid: a whole number >= 0, or null")
    if temperature is not None and top_p is not None:
        raise ValueError(f"model.temperature={temperature!r} and model.top_p={top_p!r}: set one of them, not both "
                         "(the API takes only one for current models)")
    if thinking and thinking["type"] in ("enabled", "adaptive"):
        _check_thinking_compatible(temperature, top_p, top_k, tool_choice)
    fields = {"thinking": thinking, "temperature": temperature, "top_p": top_p, "top_k": top_k, "tool_choice": tool_choice}
    return {key: value for key, value in fields.items() if value is not None}


def _check_config(key: str, value: Any, fields: Mapping[str, set[str]], valid: str) -> None:
    """`value` is null, or an object whose type is one of `fields` and whose other keys that type has."""
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in fields:
        raise ValueError(f"model.{key}={value!r}; valid: {valid}")
    unknown = sorted(set(value) - {"type"} - fields[kind])
    if unknown:
        raise ValueError(f"model.{key}.{unknown[0]}: not a field of a {kind} {key}; valid: {valid}")


def _check_tool_choice(choice: dict[str, Any]) -> None:
    if choice["type"] == "tool" and not (isinstance(choice.get("name"), str) and choice["name"]):
        raise ValueError(f"model.tool_choice.name={choice.get('name')!r}; valid: the name of an offered tool")
    if not isinstance(choice.get("disable_parallel_tool_use", False), bool):
        raise ValueError(f"model.tool_choice.disable_parallel_tool_use={choice['disable_parallel_tool_use']!r}; valid: true or false")


def _check_thinking_compatible(temperature: float | None, top_p: float | None, top_k: int | None,
                               tool_choice: dict[str, Any] | None) -> None:
    """What thinking allows: temperature 1, top_p from 0.95 to 1, no top_k, a tool_choice that forces no tool."""
    if temperature is not None and temperature != 1:
        raise ValueError(f"model.temperature={temperature!r} with model.thinking on; valid: 1, or null")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise ValueError(f"model.top_p={top_p!r} with model.thinking on; valid: a number from 0.95 to 1, or null")
    if top_k is not None:
        raise ValueError(f"model.top_k={top_k!r} with model.thinking on; valid: null (thinking takes no top_k)")
    if tool_choice is not None and tool_choice["type"] in ("any", "tool"):
        raise ValueError(f"model.tool_choice={tool_choice!r} with model.thinking on; valid: {{type: auto}}, {{type: none}}, "
                         "or null (thinking cannot be on while a tool use is forced)")


def _check_budget(body: Mapping[str, Any], max_tokens: int) -> None:
    """A thinking budget below the request's max_tokens (the API's 400 otherwise, in every session)."""
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled" and _whole(thinking.get("budget_tokens")) and thinking["budget_tokens"] >= max_tokens:
        raise ModelError(f"model.thinking.budget_tokens={thinking['budget_tokens']} must be below the request's "
                         f"max_tokens={max_tokens} (harness.max_tokens): thinking counts towards it")


def _plain(value: Any) -> Any:
    """Config as plain data (Hydra passes a DictConfig), to send as JSON."""
    return {str(k): _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
