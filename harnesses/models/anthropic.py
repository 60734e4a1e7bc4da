"""Claude through the official `anthropic` SDK: streaming, tool use, prompt caching, recorded retries.

Retries are ours, not the SDK's (its max_retries is 0), so that every one is bounded and recorded:
429 (honouring retry-after), 529, 5xx, connection errors and streams cut before message_stop.
A cut stream's partial content is discarded, never returned as a response.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

from harnesses.base import ModelError, ModelRequest, ModelResponse, Usage

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# An error event mid-stream arrives on a 200 response: its type says whether to retry.
RETRYABLE_ERRORS = frozenset({"rate_limit_error", "overloaded_error", "api_error", "timeout_error"})


class StreamCut(ModelError):
    """The stream ended before message_stop."""


HTTP_CLIENTS = ("httpx", "aiohttp")  # the SDK's default transport, or its aiohttp one (cheaper with many connections)


class AnthropicModel:
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
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if http not in HTTP_CLIENTS:
            raise ValueError(f"model.http={http!r}; valid: {', '.join(HTTP_CLIENTS)}")
        self.http = http
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.max_attempts, self.backoff_base_s, self.backoff_max_s = max_attempts, backoff_base_s, backoff_max_s
        self.timeout_s = timeout_s
        self._jitter = random.Random(seed)
        self._client: Any = None
        self._connecting = asyncio.Lock()

    async def start(self) -> None:
        """Create the client (and whatever it talks to) before the first call is timed."""
        await self._connect()

    async def respond(self, request: ModelRequest) -> ModelResponse:
        client = await self._connect()
        retries: list[dict[str, Any]] = []
        while True:
            attempt = len(retries) + 1
            try:
                return await self._stream(client, request, tuple(retries))
            except Exception as exc:
                failure = _failure(exc)
                if failure is None:
                    raise
                if not failure["retryable"] or attempt >= self.max_attempts:
                    tried = ", ".join(r["error"] for r in retries + [failure])
                    raise ModelError(f"{self.name} gave up after {attempt} attempt(s): {tried}") from None
                failure["wait_ms"] = self._wait_s(attempt, failure.pop("retry_after_s")) * 1000
                retries.append({"attempt": attempt, "at": time.time(), **{k: v for k, v in failure.items() if k != "retryable"}})
                await asyncio.sleep(failure["wait_ms"] / 1000)

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
        http = {"http_client": anthropic.DefaultAioHttpClient(timeout=self.timeout_s)} if self.http == "aiohttp" else {}
        return anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s, **http)

    async def _endpoint(self) -> tuple[str, str | None]:
        """The API key and base URL the client uses."""
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelError(f"model=anthropic needs an API key in ${self.api_key_env} (or use model=emulator)")
        return key, self.base_url

    def _wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        """retry-after when the server gives one; else full-jitter exponential backoff."""
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
            async for event in stream:
                if event.type == "content_block_delta" and first_token is None:
                    first_token = time.perf_counter()
                builder.add(event)
        if not builder.stopped:
            raise StreamCut("the stream ended before message_stop")
        done = time.perf_counter()
        server_ttft = stream.response.headers.get("x-emulator-ttft-ms")
        return ModelResponse(
            content=builder.content, stop_reason=builder.stop_reason or "end_turn", usage=builder.usage(),
            ttft_ms=((first_token or done) - started) * 1000, latency_ms=(done - started) * 1000,
            model=builder.model or self.model, request_id=stream.response.headers.get("request-id"), retries=retries,
            server_ttft_ms=float(server_ttft) if server_ttft else None,
        )


class _MessageBuilder:
    """Assembles a message from raw stream events."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, str] = {}
        self.stop_reason: str | None = None
        self.model = ""
        self.stopped = False
        self._usage: dict[str, int] = {}

    def add(self, event: Any) -> None:
        if event.type == "message_start":
            self.model = event.message.model
            self._usage.update(_usage_fields(event.message.usage))
        elif event.type == "content_block_start":
            self.blocks[event.index] = event.content_block.model_dump(exclude_none=True)
        elif event.type == "content_block_delta":
            delta, block = event.delta, self.blocks[event.index]
            if delta.type == "text_delta":
                block["text"] = block.get("text", "") + delta.text
            elif delta.type == "input_json_delta":
                self.partial_json[event.index] = self.partial_json.get(event.index, "") + delta.partial_json
        elif event.type == "content_block_stop":
            if event.index in self.partial_json:
                self.blocks[event.index]["input"] = json.loads(self.partial_json.pop(event.index) or "{}")
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self._usage.update(_usage_fields(event.usage))
        elif event.type == "message_stop":
            self.stopped = True

    @property
    def content(self) -> list[dict[str, Any]]:
        keep = {"text": ("type", "text"), "tool_use": ("type", "id", "name", "input")}
        return [{k: v for k, v in block.items() if k in keep.get(block["type"], block)} for _, block in sorted(self.blocks.items())]

    def usage(self) -> Usage:
        return Usage(**{k: self._usage.get(k, 0) for k in Usage.__dataclass_fields__})


def _usage_fields(usage: Any) -> dict[str, int]:
    fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {f: getattr(usage, f) for f in fields if getattr(usage, f, None) is not None}


def _failure(exc: Exception) -> dict[str, Any] | None:
    """What a failed attempt was, or None if it is not an API failure (a bug: let it raise)."""
    import anthropic

    if isinstance(exc, StreamCut):
        return {"error": "stream cut before message_stop", "status": None, "retryable": True, "retry_after_s": None}
    if isinstance(exc, anthropic.APIStatusError):
        kind = (exc.body or {}).get("error", {}).get("type") if isinstance(exc.body, dict) else None
        retry_after = exc.response.headers.get("retry-after")
        return {
            "error": f"{exc.status_code} {kind or type(exc).__name__}", "status": exc.status_code,
            "retryable": exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500 or kind in RETRYABLE_ERRORS,
            "retry_after_s": float(retry_after) if retry_after else None,
        }
    if isinstance(exc, anthropic.APIConnectionError) or type(exc).__module__.split(".")[0] in ("httpx2", "httpx", "httpcore"):
        return {"error": f"connection: {type(exc).__name__}", "status": None, "retryable": True, "retry_after_s": None}
    return None
