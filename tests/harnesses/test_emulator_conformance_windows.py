"""Context windows are real (issue 21, item 7): a request whose input tokens and max_tokens do not fit the model's
window gets the API's 400, worded as the API words it, so a strategy that lets its context outgrow the window fails
offline as it would for real. Through the official SDK over HTTP, as test_emulator_conformance.py does, whose
coverage check finds the context_window rule's tests here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hydra.utils import instantiate

from experiments.bench.validation import realistic_request
from experiments.run.job import compose_config
from experiments.run.runner import SessionRecord, run_task
from experiments.tasks import load_suite, policy_book
from harnesses.decoupled import DecoupledHarness
from harnesses.emulator.catalog import KNOWN_MODELS
from harnesses.emulator.server import EmulatorServer, Rejection
from harnesses.emulator.service import prompt_tokens, prompt_tokens_at_most
from harnesses.models.emulator import EmulatorModel
from sandboxes.local import LocalSandboxProvider
from stores.memory import MemoryStore
from tests.conftest import ARITHMETIC, QUICK
from tests.harnesses import test_emulator_conformance as conformance
from tests.harnesses.test_emulator_conformance import MODEL, rejected, send, user
from tests.harnesses.test_emulator_count_tokens import SHAPES

api = conformance.api  # the SDK client fixture

SMALL = "claude-emulated-8k"
WINDOW = KNOWN_MODELS[SMALL].context_window
TOO_LONG = "word " * WINDOW  # about 1.25 tokens a word, four characters of JSON each
# A long-horizon task whose log outgrows SMALL's window, and a strategy that keeps within it (docs/emulator.md)
SEPARATING_MODEL, SEPARATING_TASK, BOUNDED = "claude-emulated-6k", "refactor_16", "window"
FAST = {"base_ttft_ms": 1, "prefill_ms_per_1k_tokens": 0, "output_tokens_per_s": 0, "jitter_sigma": 0}


def asking(text: str, model: str = SMALL) -> dict[str, Any]:
    return {"model": model, "messages": user(text)}


async def counted(api: anthropic.AsyncAnthropic, request: dict[str, Any]) -> int:
    return (await api.messages.count_tokens(**request)).input_tokens


def test_the_small_window_models_are_claude_emulated_with_a_smaller_window():
    for name, window in (("claude-emulated-6k", 6_144), ("claude-emulated-8k", 8_192), ("claude-emulated-32k", 32_768)):
        assert KNOWN_MODELS[name] == dataclasses.replace(KNOWN_MODELS["claude-emulated"], context_window=window)


def test_the_cheap_token_bound_is_never_below_the_count():
    """The window rule counts exactly only when prompt_tokens_at_most reaches the window: the bound must hold."""
    bodies = [{"model": MODEL, **shape} for shape in SHAPES.values()]
    bodies += [realistic_request()[0], {**asking(TOO_LONG), "system": "s"}, {"messages": [{"role": "assistant", "content": ""}]}]
    for body in bodies:
        assert prompt_tokens(body) <= prompt_tokens_at_most(body) <= 2 * prompt_tokens(body) + 64, body


async def test_context_window_holds_input_and_max_tokens(api):
    """https://docs.claude.com/en/docs/build-with-claude/context-windows: input tokens and max_tokens up to the window
    are answered; one token more is the API's 400 with the numbers (wording seen: continuedev/continue#6080)."""
    request = asking(ARITHMETIC)
    tokens = await counted(api, request)
    fits = await send(api, {**request, "max_tokens": WINDOW - tokens})
    assert fits.content and fits.usage.input_tokens == tokens
    message = await rejected(api, "context_window", "exceed context limit", {**request, "max_tokens": WINDOW - tokens + 1})
    assert message == (f"input length and `max_tokens` exceed context limit: {tokens} + {WINDOW - tokens + 1} > {WINDOW}, "
                       "decrease input length or `max_tokens` and try again")


async def test_context_window_refuses_a_prompt_longer_than_it(api):
    """https://docs.claude.com/en/docs/build-with-claude/context-windows: a prompt over the window on its own is
    "prompt is too long" (wording seen: earendil-works/pi#102); count_tokens still counts it, as the API's does."""
    request = asking(TOO_LONG)
    tokens = await counted(api, request)
    assert tokens > WINDOW
    message = await rejected(api, "context_window", "prompt is too long", {**request, "max_tokens": 64})
    assert message == f"prompt is too long: {tokens} tokens > {WINDOW} maximum"


async def test_context_window_is_the_models_own_and_strict_only(api):
    """https://docs.claude.com/en/docs/build-with-claude/context-windows: the same prompt fits a model with a larger
    window; loose validation (model.strict=false) does not check windows."""
    assert (await send(api, {**asking(TOO_LONG, model="claude-emulated"), "max_tokens": 64})).content
    loose = EmulatorServer(policy_book(), QUICK, strict=False)
    await loose.start()
    try:
        async with anthropic.AsyncAnthropic(api_key="emulator", base_url=loose.url, max_retries=0) as client:
            assert (await send(client, {**asking(TOO_LONG), "max_tokens": 64})).content
    finally:
        await loose.stop()


async def run_on(model_name: str, context: str, task: str, root: Path) -> tuple[SessionRecord, list[Rejection]]:
    """One long-horizon task through `context` on the emulator's `model_name`: its record and the requests refused."""
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(root))
    model = EmulatorModel(policy_book(), latency=FAST, model=model_name)
    await model.start()
    try:
        strategy = instantiate(compose_config([f"context={context}", "store=memory"]).context)
        harness = DecoupledHarness(store, model, hands, strategy, max_turns=200)
        record = await run_task(store, harness, hands, *load_suite("long_horizon", only=[task])[0])
        return record, list(model.server.rejections)
    finally:
        await model.close()
        await hands.close()


@pytest.mark.slow
async def test_context_window_makes_full_fail_where_a_windowing_strategy_completes(tmp_path):
    """https://docs.claude.com/en/docs/build-with-claude/context-windows: on a window the log outgrows, `full` gets the
    API's 400 and fails; a strategy that bounds its context completes the same task."""
    full, refused = await run_on(SEPARATING_MODEL, "full", SEPARATING_TASK, tmp_path)
    assert full.outcome.status == "failed" and "400 invalid_request_error" in full.outcome.reason, full.outcome
    assert [r.rule for r in refused] == ["context_window"]
    assert refused[0].message.startswith(("input length and `max_tokens` exceed context limit", "prompt is too long"))
    bounded, refused = await run_on(SEPARATING_MODEL, BOUNDED, SEPARATING_TASK, tmp_path)
    assert bounded.outcome.status == "completed" and bounded.verdict.success and not refused, bounded

