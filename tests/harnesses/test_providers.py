"""Provider profiles (issue 21, item 6): each SDK client `model.client` names, built by new_client, against the
emulator's route for its cloud over HTTP; and the errors a wrong client, profile or credential gets."""
from __future__ import annotations

import importlib.util

import anthropic
import pytest

from experiments.run.job import compose_config
from experiments.tasks import policy_book
from harnesses.base import ModelError, ModelRequest
from harnesses.emulator.providers import EMULATED_PROFILES, EVENTSTREAM, add_provider_routes, base_url
from harnesses.emulator.server import EmulatorServer
from harnesses.models.anthropic import AnthropicModel
from harnesses.models.emulator import EmulatorModel
from harnesses.models.offline_brain import Call
from harnesses.models.providers import CLIENTS, new_client
from tests.conftest import ARITHMETIC, GREETING, QUICK

CLOUD_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "CLOUD_ML_REGION", "ANTHROPIC_VERTEX_PROJECT_ID",
                   "ANTHROPIC_FOUNDRY_RESOURCE", "ANTHROPIC_FOUNDRY_BASE_URL", "ANTHROPIC_BEDROCK_BASE_URL",
                   "ANTHROPIC_VERTEX_BASE_URL", "AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_FOUNDRY_API_KEY")


@pytest.fixture(autouse=True)
def no_cloud_environment(monkeypatch):
    """The SDK reads these when an argument is missing: a developer's own must not change what is tested."""
    for name in CLOUD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def serving_providers(monkeypatch):
    """EmulatorServer.app() with the providers' routes, as server.py adds them (until it does, this adds them)."""
    app = EmulatorServer.app

    def with_providers(server):
        built = app(server)
        if "/anthropic/v1/messages" not in {resource.canonical for resource in built.router.resources()}:
            add_provider_routes(built, server._messages, server._count_tokens)
        return built

    monkeypatch.setattr(EmulatorServer, "app", with_providers)


@pytest.fixture
async def server():
    emulator = EmulatorServer(policy_book(), QUICK)
    await emulator.start()
    yield emulator
    await emulator.stop()


def sdk_client(kind: str, server: EmulatorServer, **profile: str):
    return new_client(kind, "emulator-key", base_url(kind, server.url), anthropic.DefaultAsyncHttpxClient(), 30.0,
                      {**EMULATED_PROFILES.get(kind, {}), **profile})


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_each_client_streams_an_answer_from_its_clouds_route(kind, server):
    async with sdk_client(kind, server) as client:
        assert type(client).__name__ == {"anthropic": "AsyncAnthropic", "bedrock": "AsyncAnthropicBedrock",
                                         "vertex": "AsyncAnthropicVertex", "foundry": "AsyncAnthropicFoundry"}[kind]
        stream = await client.messages.create(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC),
                                              stream=True)
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    text = "".join(event.delta.text for event in events if event.type == "content_block_delta")
    assert text == "391" and events[0].message.model == "claude-emulated"
    assert server.served["streams"] == 1  # the same handling as /v1/messages, once


async def test_bedrock_streams_aws_eventstream(server):
    async with sdk_client("bedrock", server) as client:
        response = await client.messages.with_raw_response.create(
            model="claude-emulated", max_tokens=64, messages=user(GREETING), stream=True)
        assert response.headers["content-type"] == EVENTSTREAM
        tool_input = ""
        async for event in await response.parse():
            if event.type == "content_block_delta":
                tool_input += event.delta.partial_json
    assert '"path": "hello.txt"' in tool_input


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
async def test_the_cloud_clients_answer_without_streaming(kind, server):
    async with sdk_client(kind, server) as client:
        message = await client.messages.create(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC))
    assert (message.content[0].text, message.stop_reason) == ("391", "end_turn")


async def test_betas_reach_the_emulator_from_bedrocks_body_and_vertexs_header(server):
    async with sdk_client("vertex", server) as client:
        with pytest.raises(anthropic.BadRequestError, match="no-such-beta-2020"):
            await client.beta.messages.create(model="claude-emulated", max_tokens=64, messages=user(ARITHMETIC),
                                              betas=["no-such-beta-2020"])
    refused = await bedrock_invoke(server, {"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["no-such-beta-2020"]})
    assert refused.status_code == 400 and "no-such-beta-2020" in refused.json()["message"]


async def test_bedrock_takes_the_version_its_documentation_gives_and_needs_one(server):
    answered = await bedrock_invoke(server, {"anthropic_version": "bedrock-2023-05-31"})
    assert answered.status_code == 200 and answered.json()["content"] == [{"type": "text", "text": "391"}]
    refused = await bedrock_invoke(server, {})
    assert refused.status_code == 400 and "required key [anthropic_version] not found" in refused.json()["message"]
    assert refused.headers["x-amzn-errortype"] == "ValidationException"


async def bedrock_invoke(server: EmulatorServer, fields: dict):
    """A Bedrock InvokeModel request as a client other than the SDK sends it (curl, boto3)."""
    async with anthropic.DefaultAsyncHttpxClient() as http:
        return await http.post(f"{server.url}/model/claude-emulated/invoke", headers={"authorization": "Bearer k"},
                               json={"max_tokens": 8, "messages": user(ARITHMETIC), **fields})


async def test_vertex_counts_tokens_as_the_api_does(server):
    async with sdk_client("vertex", server) as vertex, sdk_client("anthropic", server) as api:
        counted = await vertex.messages.count_tokens(model="claude-emulated", messages=user(GREETING))
        expected = await api.messages.count_tokens(model="claude-emulated", messages=user(GREETING))
    assert counted.input_tokens == expected.input_tokens > 0


async def test_a_refused_request_comes_back_in_each_clouds_shape(server):
    async with sdk_client("bedrock", server) as bedrock, sdk_client("vertex", server) as vertex:
        with pytest.raises(anthropic.NotFoundError) as on_bedrock:
            await bedrock.messages.create(model="no-such-model", max_tokens=64, messages=user(ARITHMETIC))
        with pytest.raises(anthropic.BadRequestError) as on_vertex:
            await vertex.messages.create(model="claude-emulated", max_tokens=-1, messages=user(ARITHMETIC))
    assert on_bedrock.value.body == {"message": "model: no-such-model"}
    assert on_bedrock.value.response.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert on_vertex.value.body["error"]["type"] == "invalid_request_error"
    assert on_vertex.value.response.headers["x-emulator-rule"] == "max_tokens_field"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_the_emulator_backend_runs_through_each_client(kind):
    model = EmulatorModel(policy_book(), latency=vars(QUICK), client=kind, max_attempts=1)
    try:
        response = await model.respond(ModelRequest(system="", messages=user(ARITHMETIC), max_tokens=64))
    finally:
        await model.close()
    assert response.content == [{"type": "text", "text": "391"}] and response.request_id.startswith("req_emu_")


def many_writes(messages):
    """A policy book whose answer is six tool calls: a stream of some seventy events."""
    return lambda conversation: [Call("write_file", {"path": f"f{i}.txt", "content": "x" * 40}) for i in range(6)]


# Bedrock's eventstream frames have no blank lines and a \r in each (a header name's length, 13): read as
# server-sent events, 32 frames would be one endless event (harnesses/models/stream.py bounds them by frame)
@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_long_stream_reaches_the_backend_whole_through_each_client(kind):
    model = EmulatorModel(many_writes, latency=vars(QUICK), client=kind, max_attempts=1)
    tools = [{"name": "write_file", "description": "write", "input_schema": {"type": "object"}}]
    try:
        response = await model.respond(ModelRequest(system="", messages=user(GREETING), tools=tools, max_tokens=4096))
    finally:
        await model.close()
    assert [block["input"]["path"] for block in response.content] == [f"f{i}.txt" for i in range(6)]


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
async def test_a_stream_the_emulator_cuts_is_cut_for_the_cloud_client_too(kind):
    model = EmulatorModel(policy_book(), latency=vars(QUICK), faults={"disconnect": 1.0}, client=kind, max_attempts=1)
    try:
        with pytest.raises(ModelError, match="gave up after 1 attempt"):
            await model.respond(ModelRequest(system="", messages=user(ARITHMETIC), max_tokens=64))
    finally:
        await model.close()


def test_an_unknown_client_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="model.client='azure'; valid: anthropic, bedrock, vertex, foundry"):
        AnthropicModel(client="azure")
    with pytest.raises(ValueError, match="valid: anthropic, bedrock, vertex, foundry"):
        new_client("azure", "key", None, None, 1.0, {})


@pytest.mark.parametrize(("kind", "profile", "message"), [
    ("bedrock", {}, r"model.client=bedrock needs model.profile.aws_region, or \$AWS_REGION or \$AWS_DEFAULT_REGION set"),
    ("vertex", {"region": "us-east5"}, r"needs model.profile.project_id, or \$ANTHROPIC_VERTEX_PROJECT_ID set"),
    ("vertex", {"project_id": "p"}, r"needs model.profile.region, or \$CLOUD_ML_REGION set"),
    ("foundry", {}, r"needs model.profile.resource \(or model.base_url\), or \$ANTHROPIC_FOUNDRY_RESOURCE set"),
    ("bedrock", {"aws_region": "us-east-1", "aws_secret_key": "s"},
     "model.profile.aws_secret_key is not a setting of model.client=bedrock; valid: aws_region"),
    ("anthropic", {"region": "x"}, "model.profile.region is not a setting of model.client=anthropic; valid: none"),
    ("vertex", {"region": "", "project_id": "p"}, "model.profile.region=''; valid: a non-empty string"),
])
def test_a_profile_that_lacks_or_mistakes_a_setting_is_refused(kind, profile, message):
    with pytest.raises(ValueError, match=message):
        new_client(kind, "key", None, None, 1.0, profile)


def test_a_setting_may_come_from_the_variable_the_sdk_reads(monkeypatch):
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west1")
    client = new_client("vertex", "token", None, None, 1.0, {"project_id": "p"})
    assert client.region == "europe-west1" and str(client.base_url).startswith("https://europe-west1-aiplatform")


def test_foundry_takes_a_resource_or_a_base_url_not_both():
    assert str(new_client("foundry", "key", None, None, 1.0, {"resource": "lab"}).base_url) == \
        "https://lab.services.ai.azure.com/anthropic/"
    with pytest.raises(ValueError, match="model.profile.resource and model.base_url both name the endpoint"):
        new_client("foundry", "key", "http://127.0.0.1:1/anthropic/", None, 1.0, {"resource": "lab"})


def test_bedrock_without_botocore_says_which_extra_to_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "botocore" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"needs botocore, which is not installed: pip install 'harnesslab\[bedrock\]'"):
        new_client("bedrock", "key", None, None, 1.0, {"aws_region": "us-east-1"})


@pytest.mark.parametrize(("profile", "variable"), [("bedrock", "AWS_BEARER_TOKEN_BEDROCK"),
                                                   ("vertex", "ANTHROPIC_VERTEX_ACCESS_TOKEN"),
                                                   ("foundry", "ANTHROPIC_FOUNDRY_API_KEY")])
async def test_each_profile_reads_its_credential_from_its_variable_and_names_it_when_missing(profile, variable, monkeypatch):
    monkeypatch.delenv(variable, raising=False)
    config = compose_config([f"model={profile}", "store=memory"], groups=())
    assert (config.model.client, config.model.api_key_env) == (profile, variable)
    model = AnthropicModel(**{k: v for k, v in config.model.items() if k != "_target_"})
    with pytest.raises(ModelError, match=rf"\${variable}"):
        await model.start()

