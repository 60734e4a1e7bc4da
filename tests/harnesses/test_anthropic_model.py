"""The anthropic backend: real SDK over HTTP, bounded recorded retries, no partial answers, no key leaks."""
from __future__ import annotations

import json
import logging
import os

import pytest

from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.base import ModelError, ModelRequest
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import FaultProfile
from harnesses.models.anthropic import AnthropicModel
from harnesses.models.emulator import EmulatorModel
from sandboxes.local import LocalSandboxProvider
from stores.memory import MemoryStore
from tests.conftest import QUICK
from tests.harnesses.doubles import conversation

FAST_RETRIES = {"backoff_base_s": 0.001, "backoff_max_s": 0.01}


def emulated(faults: FaultProfile | None = None, **options) -> EmulatorModel:
    profile = {k: getattr(QUICK, k) for k in ("base_ttft_ms", "prefill_ms_per_1k_tokens", "output_tokens_per_s", "jitter_sigma")}
    return EmulatorModel(policy_book(), latency=profile, faults=vars(faults) if faults else None, **{**FAST_RETRIES, **options})


async def run_smoke(model, tmp_path) -> tuple[MemoryStore, list]:
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path / "hands"))
    harness = DecoupledHarness(store, model, hands, FullContext())
    await model.start()
    try:
        records = [await run_task(store, harness, hands, *entry) for entry in load_suite("smoke")]
    finally:
        await model.close()
        await hands.close()
    return store, records


async def test_at_a_20_percent_fault_rate_every_session_completes_as_without_faults(tmp_path):
    clean_store, clean = await run_smoke(emulated(), tmp_path / "clean")
    faults = FaultProfile(rate_limit=0.05, overloaded=0.05, server_error=0.05, disconnect=0.05, retry_after_s=0.001, seed=7)
    store, records = await run_smoke(emulated(faults, max_attempts=6), tmp_path / "faulty")
    assert all(r.verdict.success for r in records), [(r.task, r.verdict.detail) for r in records if not r.verdict.success]
    retries = []
    for mine, theirs in zip(records, clean):
        events = await store.events(mine.session_id)
        # no partial response was stored as complete: the logs are the fault-free run's, event for event
        assert conversation(events) == conversation(await clean_store.events(theirs.session_id)), mine.task
        retries += [r for e in events if e.type == "model.response" for r in e.data["retries"]]
    kinds = {r["error"].split(":")[0] for r in retries}  # e.g. "429 rate_limit_error", "connection"
    assert len(retries) >= 5 and len(kinds) >= 3, kinds
    assert all(r["attempt"] <= 5 and r["wait_ms"] >= 0 for r in retries)


async def test_retries_are_bounded_and_the_session_fails_with_them(tmp_path):
    model = emulated(FaultProfile(overloaded=1.0), max_attempts=3)
    store, [record, *_] = await run_smoke(model, tmp_path)
    assert record.outcome.status == "failed"
    assert "gave up after 3 attempt(s): 529 overloaded_error, 529 overloaded_error, 529 overloaded_error" in record.outcome.reason
    assert model.server.served["requests"] == 3 * 10  # three attempts for each of the ten sessions, no more
    assert not [e for e in await store.events(record.session_id) if e.type == "model.response"]


async def test_the_api_key_never_reaches_events_logs_or_errors(tmp_path, monkeypatch, caplog):
    planted = "sk-ant-planted-0123456789abcdef"
    monkeypatch.setenv("HARNESSLAB_TEST_KEY", planted)
    server = EmulatorServer(policy_book(), QUICK, FaultProfile(server_error=0.3, seed=1))
    await server.start()
    caplog.set_level(logging.DEBUG)
    try:
        model = AnthropicModel(model="claude-emulated", base_url=server.url, api_key_env="HARNESSLAB_TEST_KEY", max_attempts=2, **FAST_RETRIES)
        store, records = await run_smoke(model, tmp_path)
    finally:
        await server.stop()
    assert any(r.verdict.success for r in records) and any(r.outcome.status == "failed" for r in records)
    everything = [json.dumps(e.data) for r in records for e in await store.events(r.session_id)]
    everything += [r.outcome.reason for r in records] + [caplog.text]
    assert not [text for text in everything if planted in text]


async def test_the_context_caches_a_growing_prefix_and_usage_records_it(tmp_path):
    store, records = await run_smoke(emulated(), tmp_path)
    needle = next(r for r in records if r.task == "find_needle")
    usages = [e.data["usage"] for e in await store.events(needle.session_id) if e.type == "model.response"]
    late = usages[len(usages) // 2:]  # once the conversation is past the cacheable minimum
    assert all(u["cache_read_input_tokens"] > 0 for u in late)
    assert all(u["input_tokens"] < u["cache_read_input_tokens"] for u in late)  # most of each call comes from cache
    assert sum(u["cache_creation_input_tokens"] for u in usages) > 0


async def test_the_backend_logs_thinking_and_passes_it_back_to_a_standalone_emulator(tmp_path, monkeypatch):
    """model=anthropic with model.thinking, against `harnesslab emulator` as a user would run it: each turn request
    thinks (the config is sent), every logged model.response starts with its thinking block, and the strict
    emulator takes every later turn that passes it back (extended-thinking guide, #preserving-thinking-blocks)."""
    monkeypatch.setenv("HARNESSLAB_TEST_KEY", "emulator")
    server = EmulatorServer(policy_book(), QUICK)
    await server.start()
    try:
        model = AnthropicModel(model="claude-emulated", base_url=server.url, api_key_env="HARNESSLAB_TEST_KEY",
                               thinking={"type": "enabled", "budget_tokens": 1024, "display": "omitted"})
        store, records = await run_smoke(model, tmp_path)
    finally:
        await server.stop()
    assert all(r.verdict.success for r in records), [(r.task, r.verdict.detail) for r in records if not r.verdict.success]
    responses = [e.data for r in records for e in await store.events(r.session_id) if e.type == "model.response"]
    shown = [r["content"][0] for r in responses]
    assert {b["type"] for b in shown} <= {"thinking", "redacted_thinking"}
    assert all(b["thinking"] == "" and b["signature"] for b in shown if b["type"] == "thinking")  # omitted, still signed
    assert server.served["rejected"] == 0 and server.served["requests"] == len(responses) > len(records)


async def test_a_missing_key_is_named(monkeypatch):
    monkeypatch.delenv("HARNESSLAB_NO_SUCH_KEY", raising=False)
    model = AnthropicModel(api_key_env="HARNESSLAB_NO_SUCH_KEY")
    with pytest.raises(ModelError, match=r"needs an API key in \$HARNESSLAB_NO_SUCH_KEY \(or use model=emulator\)"):
        await model.respond(ModelRequest("", [{"role": "user", "content": "hi"}]))


@pytest.mark.api
@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="needs ANTHROPIC_API_KEY (the real API)")
async def test_one_smoke_task_against_the_real_api(tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model = AnthropicModel(model=os.environ.get("HARNESSLAB_API_MODEL", "claude-sonnet-4-6"))
    harness = DecoupledHarness(store, model, hands, FullContext())
    try:
        [entry] = load_suite("smoke", only=["greeting"])
        record = await run_task(store, harness, hands, *entry)
    finally:
        await model.close()
        await hands.close()
    assert record.outcome.status == "completed" and record.verdict.success, record.verdict.detail
    first = next(e for e in await store.events(record.session_id) if e.type == "model.response")
    assert first.data["request_id"] and first.data["ttft_ms"] > 0 and first.data["usage"]["input_tokens"] > 0


async def test_an_error_event_mid_stream_is_retried(monkeypatch):
    """The API can fail a stream that already began (HTTP 200) with an error event; that is retryable."""
    from aiohttp import web

    calls = []

    async def handler(request):
        calls.append(1)
        if len(calls) > 1:  # the retry succeeds
            return web.json_response(status=404, data={"type": "error", "error": {"type": "not_found_error", "message": "x"}})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        start = {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "x", "content": [],
                                                      "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}
        await response.write(f"event: message_start\ndata: {json.dumps(start)}\n\n".encode())
        await response.write(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    monkeypatch.setenv("HARNESSLAB_TEST_KEY", "k")
    model = AnthropicModel(base_url=f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", api_key_env="HARNESSLAB_TEST_KEY",
                           max_attempts=2, **FAST_RETRIES)
    try:
        with pytest.raises(ModelError, match="after 2 attempt.*200 overloaded_error, 404 not_found_error"):
            await model.respond(ModelRequest("", [{"role": "user", "content": "hi"}]))
    finally:
        await model.close()
        await runner.cleanup()
    assert len(calls) == 2


@pytest.mark.parametrize("http", ["httpx", "aiohttp"])
async def test_either_of_the_sdks_http_clients_streams_every_smoke_task(tmp_path, http):
    model = emulated(http=http)
    _, records = await run_smoke(model, tmp_path)
    assert all(r.verdict.success for r in records), [r.verdict.detail for r in records if not r.verdict.success]
    with pytest.raises(ValueError, match="model.http='curl'; valid: httpx, aiohttp"):
        emulated(http="curl")
