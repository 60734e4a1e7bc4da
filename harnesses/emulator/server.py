"""The Messages API over HTTP: POST /v1/messages (SSE stream or JSON) and /v1/messages/count_tokens.

Requests are validated as the API validates them (harnesses/emulator/validation.py; `strict=False` loosens it).
Answers come from task solver policies that see only the prompt the model reads (after the server-side context
management a beta request asks for: context_edits.py, compaction.py), shaped by the request's parameters
(harnesses/emulator/parameters.py); timing from a LatencyProfile; failures from a FaultProfile. Errors use the
API's status codes and JSON shapes; each one the validation finds is kept in `rejections`, naming its rule.
"""
from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from aiohttp import web

from harnesses.emulator.catalog import model_table
from harnesses.emulator.compaction import Compaction, compact, summarize
from harnesses.emulator.context_edits import Edited
from harnesses.emulator.parameters import Answer, honour
from harnesses.emulator.providers import add_provider_routes
from harnesses.emulator.rules import Request, RequestError
from harnesses.emulator.service import FaultProfile, LatencyProfile, PromptCache, prompt_tokens
from harnesses.emulator.validation import validate
from harnesses.models.offline_brain import PolicyBook, answer

CHUNKS_PER_BLOCK = 8  # deltas a content block is streamed in
_FAULT_STATUS = {
    "rate_limit": (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit (emulated)."),
    "overloaded": (529, "overloaded_error", "Overloaded (emulated)."),
    "server_error": (500, "api_error", "Internal server error (emulated)."),
}
SERVICE_TIER = "standard"  # what usage.service_tier says: the emulator has no priority capacity to give


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request the validation refused: the rule, the answer's status and message, and the request's body."""

    rule: str
    status: int
    message: str
    body: Any


class EmulatorServer:
    def __init__(
        self,
        policies: PolicyBook,
        latency: LatencyProfile | None = None,
        faults: FaultProfile | None = None,
        cache_min_tokens: int = 1024,
        strict: bool = True,
        models: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.policies, self.strict = policies, strict
        self.models = model_table(models)  # the known models: harnesses/emulator/catalog.py's and `models`
        self.latency, self.faults = latency or LatencyProfile(), faults or FaultProfile()
        self.cache = PromptCache(min_tokens=cache_min_tokens)
        self._fault_rng = self.faults.stream()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.served: dict[str, int] = {"requests": 0, "streams": 0, "faults": 0, "hung_up": 0, "rejected": 0}
        self.rejections: collections.deque[Rejection] = collections.deque(maxlen=100)  # the latest ones
        self.lateness_ms: collections.deque[float] = collections.deque(maxlen=100_000)  # first delta vs its deadline

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._api_errors], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/emulator/stats", self._stats)
        add_provider_routes(app, self._messages, self._count_tokens)  # Bedrock's, Vertex's and Foundry's URLs
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: a free port); returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # the port the OS chose
        self.url = f"http://{host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _api_errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except RequestError as exc:
            headers = {**exc.headers, "x-emulator-rule": exc.rule} if exc.rule else exc.headers  # for whoever debugs it
            return _json({"type": "error", "error": {"type": exc.kind, "message": str(exc)}}, exc.status, headers)
        except web.HTTPNotFound:
            return _json({"type": "error", "error": {"type": "not_found_error", "message": f"{request.path}: not found"}}, 404)
        except web.HTTPMethodNotAllowed:
            return _json({"type": "error", "error": {"type": "invalid_request_error", "message": f"{request.method} is not allowed"}}, 405)

    # -- handlers ---------------------------------------------------------------------------------

    async def _stats(self, request: web.Request) -> web.Response:
        """Counters, and how late first deltas left against the TTFT chosen for them (the emulator's own error)."""
        late = sorted(self.lateness_ms)
        at = lambda q: late[min(len(late) - 1, int(q * (len(late) - 1)))] if late else None  # noqa: E731
        return _json({**self.served, "lateness_ms": {"p50": at(0.5), "p95": at(0.95), "max": at(1.0), "count": len(late)}})

    async def _count_tokens(self, request: web.Request) -> web.Response:
        """The input tokens of the prompt the model would read; with context management, those of the prompt as sent
        too (BetaCountTokensContextManagementResponse)."""
        seen = await self._valid_body(request, "count_tokens")
        counted = {"input_tokens": prompt_tokens(seen.edited.body)}
        if seen.body.get("context_management") is not None:
            counted["context_management"] = {"original_input_tokens": prompt_tokens(seen.body)}
        return _json(counted)

    async def _valid_body(self, request: web.Request, endpoint: str) -> Request:
        """The request as the rules read it, or the RequestError of the first rule it breaks (kept in `rejections`).
        A beta request (?beta=true, as the SDK's beta client sends) is read by the beta params' types."""
        body = await _body(request)
        try:
            return validate(body, request.headers, self.models, self.strict, endpoint, request.query.get("beta") == "true")
        except RequestError as exc:
            self.served["rejected"] += 1
            self.rejections.append(Rejection(exc.rule or "", exc.status, str(exc), body))
            raise

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        seen = await self._valid_body(request, "messages")
        body = seen.body
        self.served["requests"] += 1
        fault = self.faults.draw(self._fault_rng)
        if fault in _FAULT_STATUS:
            self.served["faults"] += 1
            status, kind, message = _FAULT_STATUS[fault]
            headers = {"retry-after": f"{self.faults.retry_after_s:g}"} if status == 429 else {}
            raise RequestError(status, kind, message, headers)
        rng = self.latency.rng_for(body)  # seeded by the request, its temperature and top_p included
        message, ttft_s = self._answer(body, seen.edited, rng)
        usage = message["usage"]
        headers = {**_request_id(), "x-emulator-ttft-ms": f"{ttft_s * 1000:.3f}"}  # the TTFT it chose, for benchmarks
        if not body.get("stream"):
            await _sleep_until(arrived + ttft_s + self.latency.output_s(usage["output_tokens"]))
            return _json(message, headers=headers)
        self.served["streams"] += 1
        if fault == "disconnect":
            self.served["faults"] += 1
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache", **headers})
        await response.prepare(request)
        try:
            await self._stream(request, response, message, first_delta_at=arrived + ttft_s, cut=fault == "disconnect")
        except ConnectionResetError:  # the client hung up mid-stream, as clients may
            self.served["hung_up"] += 1
        return response

    def _answer(self, body: dict[str, Any], edited: Edited, rng: Any) -> tuple[dict[str, Any], float]:
        """The message answering `body`, from the prompt the model reads (`edited`, compacted past the trigger), and
        its TTFT in seconds (a compaction's summary is written before the answer starts)."""
        compaction = summarize(body, edited.body) if body.get("compaction") else compact(body, edited.body)
        ttft_ms = self._compaction_ms(compaction, rng)
        if compaction is not None and compaction.pause:  # the block alone: no message iteration
            answered, usage = Answer([], "compaction", None, 0), {"input_tokens": 0, "cache_read_input_tokens": 0,
                                                                  "cache_creation_input_tokens": 0}
        else:
            prompt = compaction.body if compaction else edited.body
            usage = self.cache.usage(prompt)
            ttft_ms += self.latency.ttft_ms(usage["input_tokens"] + usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"], rng)
            answered = honour(answer(self.policies, prompt["messages"], body.get("tools") or []), body, rng)
        usage["output_tokens"] = answered.output_tokens
        content = answered.content
        if compaction is not None:  # the summarizing step is billed apart, not in the top-level fields
            usage["iterations"] = [compaction.usage, *([] if compaction.pause else [{"type": "message", **usage}])]
            content = [compaction.block, *content]
        message = {
            "id": f"msg_emu_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": answered.stop_reason, "stop_sequence": answered.stop_sequence,
            "usage": {**usage, "service_tier": SERVICE_TIER},
        }
        if body.get("context_management") is not None:
            message["context_management"] = {"applied_edits": edited.applied}
        return message, ttft_ms / 1000

    def _compaction_ms(self, compaction: Compaction | None, rng: Any) -> float:
        """How long the summarizing step takes: its prefill (uncached) and its output."""
        if compaction is None:
            return 0.0
        return (self.latency.ttft_ms(compaction.usage["input_tokens"], 0, rng)
                + self.latency.output_s(compaction.usage["output_tokens"]) * 1000)

    async def _stream(self, request: web.Request, response: web.StreamResponse, message: dict[str, Any],
                      first_delta_at: float, cut: bool) -> None:
        """Events are buffered and written at each pause, so the first delta leaves with message_start."""
        usage, pending = message["usage"], []
        start = {key: value for key, value in message.items() if key != "context_management"}  # it comes at the end
        start.update(content=[], stop_reason=None, usage={k: v for k, v in usage.items() if k != "iterations"} | {"output_tokens": 1})
        pending += [_event("message_start", {"message": start}), _event("ping", {})]
        pause = self.latency.output_s(usage["output_tokens"]) / max(1, CHUNKS_PER_BLOCK * len(message["content"]))
        due = first_delta_at
        for index, block in enumerate(message["content"]):
            pending.append(_event("content_block_start", {"index": index, "content_block": _opening(block)}))
            for delta in _deltas(block):
                await _sleep_until(due, spin=due == first_delta_at)  # only the TTFT is worth a spin's CPU
                if due == first_delta_at:
                    self.lateness_ms.append((time.perf_counter() - first_delta_at) * 1000)
                await response.write(b"".join(pending + [_event("content_block_delta", {"index": index, "delta": delta})]))
                pending, due = [], time.perf_counter() + pause
                if cut:  # the connection dies mid-stream
                    request.transport.close()
                    return
            pending.append(_event("content_block_stop", {"index": index}))
        if not message["content"]:  # nothing to say (max_tokens 0), said no sooner than the TTFT
            await _sleep_until(first_delta_at)
        delta = {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                 "usage": {k: usage[k] for k in ("output_tokens", "iterations") if k in usage}}
        if "context_management" in message:
            delta["context_management"] = message["context_management"]
        pending += [_event("message_delta", delta), _event("message_stop", {})]
        await response.write(b"".join(pending))
        await response.write_eof()


def _opening(block: Mapping[str, Any]) -> dict[str, Any]:
    """A block as content_block_start shows it: empty, for its deltas to fill (a redacted one comes whole)."""
    empty = {"tool_use": {"input": {}}, "text": {"text": ""}, "thinking": {"thinking": "", "signature": ""},
             "compaction": {"content": None}}
    return {**block, **empty.get(block["type"], {})}


def _deltas(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The deltas a block streams in: text, tool input and thinking in chunks, then a thinking block's signature;
    a compaction's summary in one delta, as the API sends it."""
    kind = block["type"]
    if kind == "compaction":
        return [{"type": "compaction_delta", "content": block.get("content"), "encrypted_content": block.get("encrypted_content")}]
    if kind == "redacted_thinking":
        return []
    if kind == "tool_use":
        text, delta, key = json.dumps(block["input"]), "input_json_delta", "partial_json"
    elif kind == "thinking":
        text, delta, key = block["thinking"], "thinking_delta", "thinking"
    else:
        text, delta, key = block["text"], "text_delta", "text"
    size = max(1, -(-len(text) // CHUNKS_PER_BLOCK))
    chunks = [{"type": delta, key: text[i : i + size]} for i in range(0, max(len(text), 1), size)]
    return chunks + ([{"type": "signature_delta", "signature": block["signature"]}] if kind == "thinking" else [])


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


# asyncio's sleeps overshoot: epoll rounds timeouts up to whole milliseconds and a VM wakes late from
# idle (measured here: 0.3 to 1.5 ms). So the last stretch before a first delta's deadline is spent yielding
# to the loop instead: other requests still run, and the TTFT is met to within a few tens of microseconds.
# Later deltas just sleep: with a thousand streams open, spinning for each of them took most of the CPU.
_SPIN_S = 0.0015


async def _sleep_until(deadline: float, spin: bool = True) -> None:
    """Wait for a perf_counter() deadline: the service's own work counts towards the latency it emulates."""
    coarse = deadline - time.perf_counter() - (_SPIN_S if spin else 0.0)
    if coarse > 0:
        await asyncio.sleep(coarse)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


def _request_id() -> dict[str, str]:
    return {"request-id": f"req_emu_{uuid.uuid4().hex[:24]}"}


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers={**_request_id(), **(headers or {})})


async def _body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or RequestError (as the API answers: a key first, then JSON)."""
    if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
        raise RequestError(401, "authentication_error", "x-api-key header is required")
    try:
        body = await request.json()
    except ValueError:
        raise RequestError(400, "invalid_request_error", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_request_error", "request body must be a JSON object")
    return body
