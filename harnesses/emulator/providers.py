"""The Messages API as the clouds serve Claude: Amazon Bedrock's, Google Vertex AI's and Microsoft Foundry's URLs.

Bedrock and Vertex name the model in the URL and take `anthropic_version` in the body (Bedrock takes its betas there
too, as `anthropic_beta`); Bedrock streams AWS eventstream frames, each holding one Messages API event as base64 JSON;
Vertex streams the API's own server-sent events; Foundry is the Messages API under /anthropic. Foundry's routes are the
server's own handlers. Bedrock's and Vertex's turn the request into a Messages API one and send it over loopback to
this same server's /v1/messages (validation, policies, latency, faults: the same handling), then answer as the
provider does. `add_provider_routes` adds them to an EmulatorServer's app; `base_url` says where each client points.
"""
from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web
from yarl import URL

from harnesses.emulator.rules import RequestError, invalid

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What each SDK client needs besides a base URL to reach the emulator (harnesses/models/providers.py checks them).
EMULATED_PROFILES: dict[str, dict[str, str]] = {
    "bedrock": {"aws_region": "us-east-1"},
    "vertex": {"region": "us-east5", "project_id": "harnesslab-emulated"},
}
_BASE_PATHS = {"anthropic": "", "bedrock": "", "vertex": "/v1", "foundry": "/anthropic/"}  # as each cloud's base URL ends

# The versions the clouds document, which the Messages API calls 2023-06-01; any other is checked as the API checks it.
_CLOUD_VERSIONS = {"bedrock-2023-05-31": "2023-06-01", "vertex-2023-10-16": "2023-06-01"}
_FORWARDED = ("x-api-key", "authorization", "anthropic-beta")
_RELAYED = ("content-type", "cache-control", "request-id", "retry-after", "x-emulator-ttft-ms", "x-emulator-rule")
EVENTSTREAM = "application/vnd.amazon.eventstream"
# The Messages API's error types as Bedrock names them (the status stays the API's).
_BEDROCK_ERRORS = {
    "invalid_request_error": "ValidationException", "authentication_error": "AccessDeniedException",
    "permission_error": "AccessDeniedException", "not_found_error": "ResourceNotFoundException",
    "rate_limit_error": "ThrottlingException", "overloaded_error": "ServiceUnavailableException",
}
_LOOPBACK = web.AppKey("provider_loopback", aiohttp.ClientSession)


def base_url(client: str, root: str) -> str:
    """Where `model.client`'s SDK client points to reach the emulator serving at `root`."""
    return root.rstrip("/") + _BASE_PATHS[client]


def add_provider_routes(app: web.Application, messages: Handler, count_tokens: Handler) -> None:
    """The clouds' routes, beside the server's /v1/messages (`messages`) and /v1/messages/count_tokens."""
    app.router.add_post("/anthropic/v1/messages", messages)
    app.router.add_post("/anthropic/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/model/{model}/invoke", _bedrock)
    app.router.add_post("/model/{model}/invoke-with-response-stream", _bedrock)
    app.router.add_post("/v1/projects/{project}/locations/{region}/publishers/anthropic/models/"
                        "{model}:{specifier:rawPredict|streamRawPredict}", _vertex)
    app.cleanup_ctx.append(_loopback)


async def _loopback(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0)  # as many streams at once as clients open
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        app[_LOOPBACK] = session
        yield


async def _bedrock(request: web.Request) -> web.StreamResponse:
    streams = request.path.endswith("/invoke-with-response-stream")
    try:
        body, headers = await _translated(request, bedrock=True)
    except RequestError as exc:
        return _bedrock_error(exc.status, exc.kind, str(exc), exc.headers)
    body.update(model=request.match_info["model"], stream=streams)
    async with _post(request, "/v1/messages", body, headers) as upstream:
        if upstream.status != 200:
            error = (await upstream.json(content_type=None)).get("error", {})
            relayed = {name: value for name, value in _relayed(upstream).items() if name != "content-type"}
            return _bedrock_error(upstream.status, error.get("type"), error.get("message", ""), relayed)
        return await _relay(request, upstream, EventStreamFrames() if streams else None)


async def _vertex(request: web.Request) -> web.StreamResponse:
    body, headers = await _translated(request, bedrock=False)
    model, path = request.match_info["model"], "/v1/messages"
    if model == "count-tokens":  # the model is in the body here, as /v1/messages/count_tokens takes it
        path += "/count_tokens"
    else:
        body["model"] = model
    async with _post(request, path, body, headers) as upstream:
        return await _relay(request, upstream)


async def _translated(request: web.Request, bedrock: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The request as the Messages API takes it: its body without the version (and Bedrock's betas), which become
    the headers the API reads them from."""
    try:
        body = await request.json()
    except ValueError:
        raise invalid("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    version = body.pop("anthropic_version", None)
    if not isinstance(version, str):
        raise invalid("Malformed input request: #: required key [anthropic_version] not found, please reformat your "
                      "input and try again." if bedrock else "anthropic_version: Field required")
    headers = {name: value for name in _FORWARDED if (value := request.headers.get(name))}
    headers["anthropic-version"] = _CLOUD_VERSIONS.get(version, version)
    betas = body.pop("anthropic_beta", None) if bedrock else None
    if isinstance(betas, list) and betas:
        headers["anthropic-beta"] = ",".join(map(str, betas))
    return body, headers


def _post(request: web.Request, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> Any:
    """POST to this same server (the socket the request came in on)."""
    host, port = request.transport.get_extra_info("sockname")[:2]
    url = URL.build(scheme="http", host=host, port=port, path=path)
    return request.app[_LOOPBACK].post(url, json=body, headers=headers)


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse,
                 frames: EventStreamFrames | None = None) -> web.StreamResponse:
    """The server's answer, as it comes (an event stream re-framed by `frames`); a stream the server cuts is cut."""
    headers = _relayed(upstream)
    if frames is not None:
        headers["content-type"] = EVENTSTREAM
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(frames.feed(chunk) if frames is not None else chunk)
    except aiohttp.ClientPayloadError:  # a disconnect fault: the client sees its connection die, as with the API
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionResetError:  # the client hung up
        return response
    await response.write_eof()
    return response


def _bedrock_error(status: int, kind: str | None, message: str, headers: Mapping[str, str]) -> web.Response:
    """An error as Bedrock answers one: `{"message": ...}`, its exception named in x-amzn-ErrorType."""
    named = {**headers, "x-amzn-ErrorType": _BEDROCK_ERRORS.get(kind or "", "InternalServerException")}
    return web.json_response({"message": message}, status=status, headers=named)


def _relayed(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {name: value for name in _RELAYED if (value := upstream.headers.get(name))}


class EventStreamFrames:
    """Server-sent events in, AWS eventstream out: each event's data in a `chunk` frame, as {"bytes": base64}."""

    def __init__(self) -> None:
        self._pending = b""  # an event not yet ended by its blank line

    def feed(self, data: bytes) -> bytes:
        *events, self._pending = (self._pending + data).split(b"\n\n")
        return b"".join(chunk_frame(payload) for event in events if (payload := _event_data(event)))


def _event_data(event: bytes) -> bytes:
    return b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))


def chunk_frame(event: bytes) -> bytes:
    """One eventstream message: a prelude (total and headers length, their CRC32), headers, payload, CRC32 of all."""
    payload = json.dumps({"bytes": base64.b64encode(event).decode()}).encode()
    headers = b"".join(_header(name, value) for name, value in (
        (":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")))
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _header(name: str, value: str) -> bytes:
    """A string header (value type 7): name length, name, type, value length, value."""
    encoded = value.encode()
    return bytes([len(name)]) + name.encode() + struct.pack(">BH", 7, len(encoded)) + encoded

