"""A hostile model server: whatever it sends (broken SSE, events out of order, bad headers, pings forever), the
model client ends the call with a ModelError naming what was wrong, retried as a server error, within its
deadlines; a session on it fails with that reason and keeps its log. A tiny aiohttp server on loopback."""
from __future__ import annotations

import asyncio
import email.utils
import json
import time

import pytest
from aiohttp import web

from harnesses.base import ModelError, ModelRequest
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.anthropic import AnthropicModel
from harnesses.models.stream import MAX_EVENT_BYTES, MAX_EVENT_LINES
from processes.children import serve_app
from sandboxes.local import LocalSandboxProvider
from stores.memory import MemoryStore
from tests.conftest import ARITHMETIC
from tests.harnesses.doubles import start_session
from tests.harnesses.test_decoupled import SMOKE
from tests.sandboxes.test_hostile import reset_peak_rss, rss_mb

KEY_ENV = "HARNESSLAB_FAKE_SERVER_KEY"
HANG_GUARD_S = 60  # turns a hang into a failure; no call comes near it


def sse(*events) -> str:
    return "".join(f"event: {kind}\ndata: {data if isinstance(data, str) else json.dumps(data)}\n\n" for kind, data in events)


START = ("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "fake", "content": [], "stop_reason": None,
    "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 0}}})
END = [("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                          "usage": {"output_tokens": 2}}),
       ("message_stop", {"type": "message_stop"})]


def block_start(index: int, block: dict) -> tuple:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields) -> tuple:
    kind = "text_delta" if "text" in fields else "input_json_delta"
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": kind, **fields}}


def block_stop(index: int) -> tuple:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


TEXT = [block_start(0, {"type": "text", "text": ""}), delta(0, text="391"), block_stop(0)]
GOOD = sse(START, *TEXT, *END)


def tool_stream(partial_json: str) -> str:
    use = {"type": "tool_use", "id": "toolu_1", "name": "list_files", "input": {}}
    return sse(START, block_start(0, use), delta(0, partial_json=partial_json), block_stop(0), *END)


def stream(body: str, **headers: str):
    async def answer(request):
        return web.Response(text=body, content_type="text/event-stream", headers=headers)
    return answer


def status(code: int, **headers: str):
    async def answer(request):
        body = {"type": "error", "error": {"type": "rate_limit_error" if code == 429 else "api_error", "message": "no"}}
        return web.json_response(body, status=code, headers=headers)
    return answer


async def pings_forever(request):
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    try:
        while True:
            await response.write(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
            await asyncio.sleep(0.05)
    except ConnectionResetError:  # the client gave up on the attempt, as it must
        return response


class FakeServer:
    """Answers the n-th request with the n-th answer (the last one from then on)."""

    def __init__(self, *answers):
        self.answers, self.requests = list(answers), 0

    async def handle(self, request):
        await request.read()
        answer = self.answers[min(self.requests, len(self.answers) - 1)]
        self.requests += 1
        return await answer(request)


@pytest.fixture
async def serve(monkeypatch):
    """serve(*answers, **model options) -> (model, server)."""
    monkeypatch.setenv(KEY_ENV, "fake-key")
    stops, models = [], []

    async def start(*answers, **options):
        server = FakeServer(*answers)
        app = web.Application()
        app.router.add_post("/v1/messages", server.handle)
        url, stop = await serve_app(app)
        stops.append(stop)
        options = {"max_attempts": 3, "backoff_base_s": 0.001, "backoff_max_s": 0.01, **options}
        model = AnthropicModel(model="fake", base_url=url, api_key_env=KEY_ENV, **options)
        models.append(model)
        return model, server

    yield start
    for model in models:
        await model.close()
    for stop in stops:
        await stop()


async def ask(model):
    return await asyncio.wait_for(model.respond(ModelRequest("", [{"role": "user", "content": ARITHMETIC}])), HANG_GUARD_S)


@pytest.mark.parametrize("body, violation", [
    (sse(START) + "event: content_block_delta\ndata: {not json\n\n", "an event's data is not JSON"),
    (sse(START, delta(0, text="x"), *END), "content_block_delta for block 0, which is not started"),
    (sse(START, *TEXT, block_start(0, {"type": "text", "text": ""}), *END), "content_block_start for block 0, which has started already"),
    (sse(START, *TEXT, delta(0, text="x"), *END), "content_block_delta for block 0, which is stopped"),
    (sse(START, *TEXT[:2], *END), r"message_stop while block\(s\) \[0\] never stopped"),
    (sse(START, *END, *TEXT), "content_block_start after message_stop"),
    (sse(END[-1]), "message_stop before message_start"),
    (sse(START, *END), r"an empty message \(no content block before message_stop\)"),
    (sse(START, block_start(0, {"type": "text", "text": ""}), delta(0, partial_json="{}"), block_stop(0), *END),
     "an input_json_delta for text block 0"),
    (sse(START, block_start(0, {"type": "tool_use", "input": {}}), block_stop(0), *END), "tool_use block 0 without a string id"),
    (tool_stream('{"path": '), "tool_use block 0's input is not valid JSON"),
    (tool_stream('["a"]'), "tool_use block 0's input is a JSON list, not an object"),
    (tool_stream('{"a": ' + "[" * 100 + "]" * 100 + "}"), "tool_use block 0.s input is nested more than 32 levels deep"),
    (tool_stream('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"), "tool_use block 0's input is not valid JSON"),
    (tool_stream('{"path": "caf\\udce9"}'), r"the message holds a lone surrogate \('\\udce9'\), which is not text"),
    (sse(START, block_start(0, {"type": "text", "text": ""}), delta(0, text="\udc80"), block_stop(0), *END),
     r"the message holds a lone surrogate \('\\udc80'\)"),
])
async def test_a_malformed_stream_is_a_named_protocol_violation_retried_as_a_server_error(serve, body, violation):
    model, server = await serve(stream(body))
    with pytest.raises(ModelError, match=f"gave up after 3 attempt\\(s\\): protocol violation: {violation}"):
        await ask(model)
    assert server.requests == 3


async def test_a_malformed_stream_then_a_good_one_is_one_recorded_retry(serve):
    model, server = await serve(stream(sse(START, delta(0, text="x"), *END)), stream(GOOD))
    response = await ask(model)
    assert response.content == [{"type": "text", "text": "391"}]
    assert [r["error"] for r in response.retries] == ["protocol violation: content_block_delta for block 0, which is not started"]


async def test_retry_after_nan_or_an_http_date_is_parsed_not_obeyed_blindly(serve):
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    model, _ = await serve(status(429, **{"retry-after": "nan"}), status(429, **{"retry-after": past}),
                           status(503, **{"retry-after": "-5"}), stream(GOOD), max_attempts=4)
    response = await ask(model)
    waits = [r["wait_ms"] for r in response.retries]
    assert len(waits) == 3 and 0 <= waits[0] <= 10 and waits[1] == 0 and 0 <= waits[2] <= 10


async def test_a_header_that_is_not_a_number_is_ignored(serve):
    model, _ = await serve(stream(GOOD, **{"x-emulator-ttft-ms": "soon"}))
    response = await ask(model)
    assert response.server_ttft_ms is None and response.content == [{"type": "text", "text": "391"}]


async def test_a_server_that_pings_forever_meets_the_attempt_deadline(serve):
    model, server = await serve(pings_forever, timeout_s=0.3, max_attempts=2)
    with pytest.raises(ModelError, match=r"after 2 attempt\(s\): no complete message within 0.3 s, no complete message"):
        await ask(model)
    assert server.requests == 2


async def test_the_call_deadline_stops_retries_it_cannot_wait_for(serve):
    model, server = await serve(status(503, **{"retry-after": "20"}), max_attempts=10, backoff_max_s=30, deadline_s=5)
    with pytest.raises(ModelError, match=r"gave up after 1 attempt\(s\) \(deadline_s=5 reached\): 503 api_error"):
        await ask(model)
    assert server.requests == 1


@pytest.mark.parametrize("http", ["httpx", "aiohttp"])
async def test_a_session_on_a_malformed_server_fails_with_the_reason_and_keeps_its_log(serve, tmp_path, http):
    model, _ = await serve(stream(sse(START, delta(0, text="x"), *END)), http=http)
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    task = SMOKE["arithmetic"][2]
    sid = await start_session(store, task)
    try:
        outcome = await asyncio.wait_for(DecoupledHarness(store, model, provider, FullContext()).wake(sid), HANG_GUARD_S)
    finally:
        await provider.close()
    assert outcome.status == "failed" and "protocol violation: content_block_delta for block 0" in outcome.reason
    events = await store.events(sid)
    assert [e.data for e in events if e.type == "user.message"] == [{"text": task.prompt}]
    assert events[-1].type == "session.failed" and events[-1].data["reason"] == outcome.reason



def endless(first: bytes, piece: bytes):
    """A stream that sends message_start and `first`, then `piece` forever: never a blank line to end an event."""
    async def answer(request):
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(START).encode() + first)
        try:
            while True:
                await response.write(piece * ((1 << 16) // len(piece)))
        except (ConnectionResetError, RuntimeError):  # the client gave up on the attempt, as it must
            return response
    return answer


@pytest.mark.parametrize("http", ["httpx", "aiohttp"])
@pytest.mark.parametrize("first, piece, bound", [
    (b"data: ", b"x", f"{MAX_EVENT_BYTES} bytes"),
    (b"", b"data: x\n", f"{MAX_EVENT_LINES} lines"),  # each line a copy of all before it, in the SDK's decoder
], ids=["one endless line", "no blank line"])
async def test_an_endless_event_is_stopped_by_its_size_in_bounded_memory(serve, http, first, piece, bound):
    model, server = await serve(endless(first, piece), http=http, timeout_s=20)  # time would stop it later
    before = reset_peak_rss()
    with pytest.raises(ModelError, match=f"protocol violation: an event of more than {bound}"):
        await ask(model)
    grew = rss_mb() - before
    print(f"\n[{http}] peak RSS growth over 3 endless events: {grew:.1f} MB")
    assert server.requests == 3 and grew < 32  # the server, in this process, included


def test_an_eventstream_frame_is_bounded_by_its_declared_length_before_its_body_arrives():
    from harnesses.models.stream import ProtocolError, _OpenFrame

    frame = _OpenFrame()
    small = (64).to_bytes(4, "big") + bytes(60)
    for i in range(0, len(small) * 100, 7):  # a hundred frames, split anywhere
        frame.feed((small * 100)[i:i + 7])
    with pytest.raises(ProtocolError, match=f"an eventstream frame of {MAX_EVENT_BYTES + 1} bytes"):
        frame.feed((MAX_EVENT_BYTES + 1).to_bytes(4, "big")[:3])
        frame.feed((MAX_EVENT_BYTES + 1).to_bytes(4, "big")[3:])
