"""The Model contract, run on every model: scripted, emulator, replay, and anthropic against the project's own
emulator over HTTP. A model of your own runs it by adding one line to MODELS (and to OVER_HTTP if it talks to a
Messages-API server, so that the server's faults apply to it).

Every model answers with a final message (text, or tool uses with ids, names and object inputs) and its usage and
timings. Those that stream over HTTP send the first token before the message ends, retry 529 and 500 with each
retry recorded, bound their retries, and never retry a bad request. A request a model cannot answer raises a
ModelError that says why.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

import pytest

from examples.my_model import CountingModel
from experiments.tasks import load_suite, policy_book
from harnesses.base import Model, ModelError, ModelRequest, ModelResponse
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import FaultProfile, LatencyProfile
from harnesses.messages import content_text
from harnesses.models.anthropic import AnthropicModel
from harnesses.models.emulator import EmulatorModel
from harnesses.models.replay import ReplayModel
from harnesses.models.scripted import ScriptedModel
from sandboxes.tools import TOOLS
from stores.archive import ArchiveStore
from tests.conftest import ARITHMETIC
from tests.harnesses.test_replay import recording

KEY_ENV = "HARNESSLAB_CONTRACT_KEY"
RETRIES = {"backoff_base_s": 0.001, "backoff_max_s": 0.01}
LATENCY = LatencyProfile(base_ttft_ms=2, prefill_ms_per_1k_tokens=0, output_tokens_per_s=1000, jitter_sigma=0)


@asynccontextmanager
async def started(model):
    """`model`, started, and closed at exit."""
    await model.start()
    try:
        yield model
    finally:
        await model.close()


@asynccontextmanager
async def scripted(tmp_path, faults, **options):
    yield ScriptedModel(policy_book())


@asynccontextmanager
async def emulator(tmp_path, faults, **options):
    latency = {k: getattr(LATENCY, k) for k in ("base_ttft_ms", "prefill_ms_per_1k_tokens", "output_tokens_per_s", "jitter_sigma")}
    async with started(EmulatorModel(policy_book(), latency=latency, faults=vars(faults), **{**RETRIES, **options})) as model:
        yield model


@asynccontextmanager
async def replay(tmp_path, faults, **options):
    path, _, _ = await recording(tmp_path)  # the smoke suite, answered by the scripted model
    async with started(ReplayModel(ArchiveStore(path))) as model:
        yield model


@asynccontextmanager
async def anthropic(tmp_path, faults, **options):
    server = EmulatorServer(policy_book(), LATENCY, faults)
    await server.start()
    model = AnthropicModel(model="claude-emulated", base_url=server.url, api_key_env=KEY_ENV, **{**RETRIES, **options})
    try:
        yield model
    finally:
        await model.close()
        await server.stop()


@asynccontextmanager
async def counting(tmp_path, faults, **options):  # a user's own (examples/my_model.py, docs/guides/model.md)
    async with started(CountingModel(policy_book())) as model:
        yield model


MODELS = {"scripted": scripted, "emulator": emulator, "replay": replay, "anthropic": anthropic, "counting": counting}
OVER_HTTP = ["emulator", "anthropic"]
SMOKE = {task.name: task for _, _, task in load_suite("smoke")}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "contract-key")  # some key, as the API wants; the emulator takes any


def model_of(name: str, tmp_path, faults: FaultProfile | None = None, **options):
    return MODELS[name](tmp_path, faults or FaultProfile(), **options)


def asking(prompt: str) -> ModelRequest:
    """The first request of a session with this prompt, as the harness sends it (the sandbox's tools offered)."""
    return ModelRequest("", [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                        [spec.to_api() for spec in TOOLS.values()])


def assert_complete(response: ModelResponse) -> None:
    assert isinstance(response, ModelResponse) and response.content and response.model
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert 0 <= response.ttft_ms <= response.latency_ms


@pytest.mark.parametrize("name", MODELS)
async def test_a_model_answers_with_a_final_message_its_usage_and_timings(name, tmp_path):
    async with model_of(name, tmp_path) as model:
        assert isinstance(model, Model)
        response = await model.respond(asking(ARITHMETIC))
    assert_complete(response)
    assert (content_text(response.content), response.stop_reason) == ("391", "end_turn")


@pytest.mark.parametrize("name", MODELS)
async def test_a_tool_use_answer_has_ids_names_and_object_inputs(name, tmp_path):
    async with model_of(name, tmp_path) as model:
        response = await model.respond(asking(SMOKE["fix_bug"].prompt))
    assert_complete(response)
    assert response.stop_reason == "tool_use" and response.tool_uses
    assert all(isinstance(u["id"], str) and u["name"] in TOOLS and isinstance(u["input"], dict) for u in response.tool_uses)


@pytest.mark.parametrize("name", OVER_HTTP)
async def test_a_streamed_answer_has_its_first_token_before_its_end(name, tmp_path):
    async with model_of(name, tmp_path) as model:
        response = await model.respond(asking(SMOKE["fix_bug"].prompt))
    assert 0 < response.ttft_ms < response.latency_ms and response.server_ttft_ms is not None
    assert response.retries == () and response.request_id


@pytest.mark.parametrize("name", OVER_HTTP)
@pytest.mark.parametrize("fault, status, error", [("overloaded", 529, "529 overloaded_error"), ("server_error", 500, "500 api_error")])
async def test_529_and_500_are_retried_and_each_retry_recorded(name, fault, status, error, tmp_path):
    async with model_of(name, tmp_path, FaultProfile(**{fault: 0.5}, seed=3), max_attempts=10) as model:
        responses = [await model.respond(asking(ARITHMETIC)) for _ in range(8)]
    assert all(content_text(r.content) == "391" for r in responses)
    retries = [retry for r in responses for retry in r.retries]
    assert retries and all((r["status"], r["error"]) == (status, error) for r in retries)
    assert all(r["attempt"] >= 1 and r["wait_ms"] >= 0 for r in retries)


@pytest.mark.parametrize("name", OVER_HTTP)
async def test_retries_are_bounded_and_the_error_names_each_attempt(name, tmp_path):
    async with model_of(name, tmp_path, FaultProfile(overloaded=1.0), max_attempts=3) as model:
        with pytest.raises(ModelError, match=r"gave up after 3 attempt\(s\): 529 overloaded_error, 529 overloaded_error, "
                                             r"529 overloaded_error$"):
            await model.respond(asking(ARITHMETIC))


@pytest.mark.parametrize("name", OVER_HTTP)
async def test_a_bad_request_is_not_retried_and_retry_after_is_honoured(name, tmp_path):
    faults = FaultProfile(rate_limit=0.5, retry_after_s=0.02, seed=3)
    async with model_of(name, tmp_path, faults, max_attempts=10, backoff_max_s=1.0) as model:
        with pytest.raises(ModelError, match="after 1 attempt.*400 invalid_request_error"):
            await model.respond(ModelRequest("", [{"role": "user", "content": ARITHMETIC}], max_tokens=-1))
        waits = []
        for _ in range(10):
            response = await model.respond(ModelRequest("", [{"role": "user", "content": ARITHMETIC}]))
            waits += [r["wait_ms"] for r in response.retries if r["status"] == 429]
    assert waits and all(w == pytest.approx(20) for w in waits)


CANNOT_ANSWER = {  # a request each model cannot answer (the scripted model answers anything), and what it says
    "replay": (ModelRequest("", [{"role": "user", "content": "hello"}]), "no recorded session starts with 'hello'"),
    "emulator": (ModelRequest("", [{"role": "user", "content": "hi"}], max_tokens=-1), "400 invalid_request_error"),
    "anthropic": (ModelRequest("", [{"role": "user", "content": "hi"}], max_tokens=-1), "400 invalid_request_error"),
}


@pytest.mark.parametrize("name", CANNOT_ANSWER)
async def test_a_request_a_model_cannot_answer_raises_a_model_error_saying_why(name, tmp_path):
    request, why = CANNOT_ANSWER[name]
    async with model_of(name, tmp_path) as model:
        with pytest.raises(ModelError, match=why):
            await model.respond(request)
