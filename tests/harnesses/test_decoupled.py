"""The decoupled harness: lazy hands, log discipline, failures, and no state outside the log."""
from __future__ import annotations

import asyncio
import pytest

from experiments.results.invariants import check_session
from experiments.run.runner import check, run_task
from experiments.tasks import load_suite, policy_book
from harnesses.base import ModelError
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.scripted import ScriptedModel
from harnesses.models.offline_brain import Call, Reply
from sandboxes.base import Setup
from sandboxes.local import LocalSandboxProvider
from stores.base import Event, StoreUnavailable
from stores.memory import MemoryStore
from tests.harnesses.doubles import Crash, CrashOnAppend, GatedStore, sleep_noting_cancel, start_session

SMOKE = {suite_task.name: (suite, i, suite_task) for suite, i, suite_task in load_suite("smoke")}


def harness(store, provider, model=None, **options) -> DecoupledHarness:
    return DecoupledHarness(store, model or ScriptedModel(policy_book()), provider, FullContext(), **options)


@pytest.mark.parametrize("name", sorted(SMOKE))
async def test_every_smoke_task_succeeds_and_the_log_is_well_formed(name, tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider), provider, *SMOKE[name])
    assert record.outcome.status == "completed" and record.verdict.success, record.verdict.detail
    events = await store.events(record.session_id)
    types = [e.type for e in events]
    assert types[:3] == ["session.created", "user.message", "harness.woke"] and types[-1] == "session.completed"
    calls = [e for e in events if e.type == "tool.call"]
    results = [e for e in events if e.type == "tool.result"]
    assert [c.data["tool_use_id"] for c in calls] == [r.data["tool_use_id"] for r in results]
    assert all(c.position < r.position for c, r in zip(calls, results))
    assert all(c.data["idempotency_key"] == f"{record.session_id}:{c.data['tool_use_id']}" for c in calls)
    provisioned = [e for e in events if e.type == "sandbox.provisioned"]
    assert len(provisioned) == (1 if calls else 0)  # hands only once a tool needs them
    if calls:
        assert calls[0].position < provisioned[0].position
    await provider.close()


def is_edit_result(event) -> bool:  # the edit took effect; its tool.result is what the crash loses
    return event.type == "tool.result" and event.data.get("name") == "edit_file"


@pytest.mark.parametrize("policy, starts", [("idempotent", 1), ("rerun", 2)])
async def test_an_edit_interrupted_after_it_took_effect_is_reported_unknown_and_recovered(tmp_path, policy, starts):
    from sandboxes.journal import starts as journal_starts

    journal = tmp_path / "journal.jsonl"
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path / "hands"), journal=str(journal))
    suite, instance, task = SMOKE["fix_bug"]
    sid = await start_session(store, task)
    with pytest.raises(Crash):
        await harness(CrashOnAppend(store, is_edit_result, "after the edit, before its result"), provider).wake(sid)
    outcome = await harness(store, provider, interrupted=policy).wake(sid)
    events = await store.events(sid)
    interrupted = next(e for e in events if e.type == "tool.result" and e.data["name"] == "edit_file")
    assert interrupted.data["is_error"]  # "interrupted", or (re-run) the edit found nothing left to replace
    assert [e.data["name"] for e in events if e.type == "tool.call"].count("edit_file") == 1
    key = next(e.data["idempotency_key"] for e in events if e.type == "tool.call" and e.data["name"] == "edit_file")
    assert journal_starts(journal)[key, "edit_file"] == starts  # the journal sees what the logs cannot: a re-run
    assert outcome.status == "completed"
    verdict = await check(task, outcome, provider, Setup.from_meta(task.meta(suite)["setup"]))
    assert verdict.success, verdict.detail
    await provider.close()


async def test_wake_on_an_ended_session_writes_nothing(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider), provider, *SMOKE["greeting"])
    length = (await store.session(record.session_id)).length
    outcome = await harness(store, provider).wake(record.session_id)
    assert (outcome.status, outcome.final_text) == ("completed", record.outcome.final_text)
    assert (await store.session(record.session_id)).length == length


async def test_a_second_user_message_reopens_the_session(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider), provider, *SMOKE["arithmetic"])
    await store.append(record.session_id, [Event("user.message", {"text": "And again?"})])
    assert (await store.session(record.session_id)).status == "active"
    outcome = await harness(store, provider).wake(record.session_id)
    assert outcome.status == "completed" and outcome.final_text == "391"
    responses = [e for e in await store.events(record.session_id) if e.type == "model.response"]
    assert len(responses) == 2 and all("turn_ttft_ms" in r.data for r in responses)


async def test_max_turns_fails_the_session(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    looping = ScriptedModel(lambda messages: lambda c: Call("list_files", {}))
    sid = await start_session(store, SMOKE["greeting"][2])
    outcome = await harness(store, provider, looping, max_turns=3).wake(sid)
    assert outcome.status == "failed" and outcome.reason.startswith("max_turns: 3")
    events = await store.events(sid)
    assert events[-1].type == "session.failed" and [e.type for e in events].count("model.response") == 3
    await provider.close()


class BrokenModel:
    name = "broken"

    async def respond(self, request):
        raise ModelError("overloaded after 3 attempts")


async def test_model_error_fails_the_session_with_its_reason(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await start_session(store, SMOKE["greeting"][2])
    outcome = await harness(store, provider, BrokenModel()).wake(sid)
    assert outcome.status == "failed" and "overloaded after 3 attempts" in outcome.reason
    assert (await store.events(sid, -1))[0].data["reason"] == outcome.reason


async def test_two_brains_on_one_session_one_backs_off(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await start_session(store, SMOKE["fix_bug"][2])
    outcomes = await asyncio.gather(harness(store, provider).wake(sid), harness(store, provider).wake(sid))
    assert sorted(o.status for o in outcomes) == ["completed", "conflict"]
    events = await store.events(sid)
    ids = [e.data["tool_use_id"] for e in events if e.type == "tool.call"]
    assert len(ids) == len(set(ids)) and [e.position for e in events] == list(range(len(events)))
    await provider.close()


async def test_a_brain_that_loses_its_claim_cancels_the_model_call_it_had_started(tmp_path):
    """The first request goes out while harness.woke commits; a lost claim cancels it at once."""
    class SlowClaims(MemoryStore):
        release = asyncio.Event()

        async def append(self, session_id, events, *, expect=None):
            if events[0].type == "harness.woke" and events[0].data["harness"] == "decoupled":
                await self.release.wait()
            return await super().append(session_id, events, expect=expect)

    called, cancelled = asyncio.Event(), asyncio.Event()

    class SlowModel:
        name = "slow"

        async def respond(self, request):
            called.set()
            await sleep_noting_cancel(30, cancelled)

    store, provider = SlowClaims(), LocalSandboxProvider(root=str(tmp_path))
    sid = await start_session(store, SMOKE["greeting"][2])
    waking = asyncio.ensure_future(harness(store, provider, SlowModel()).wake(sid))
    await asyncio.wait_for(called.wait(), 5)  # the request is out before the claim has committed
    await store.append(sid, [Event("harness.woke", {"harness": "other"})], expect=2)  # another brain claims first
    store.release.set()
    outcome = await asyncio.wait_for(waking, 5)
    assert outcome.status == "conflict" and cancelled.is_set()
    assert [e.data["harness"] for e in await store.events(sid) if e.type == "harness.woke"] == ["other"]
    await provider.close()


class AfterToolResult:
    """The scripted model; a call that answers a tool result first notes whether the store has that result yet."""

    name = "scripted"

    def __init__(self, store, hold_s=0.0):
        self.store, self.hold_s, self.stored_at_call = store, hold_s, []
        self.inner, self.cancelled = ScriptedModel(policy_book()), asyncio.Event()

    async def respond(self, request):
        if request.messages[-1]["content"][0].get("type") == "tool_result":
            stored = [e.type for e in await self.store.events(self.session_id)]
            self.stored_at_call.append("tool.result" in stored)
            self.store.release.set()
            await sleep_noting_cancel(self.hold_s, self.cancelled)
        return await self.inner.respond(request)


async def test_the_next_model_call_goes_out_while_the_tool_result_before_it_commits(tmp_path):
    store, provider = GatedStore(held={"tool.result"}), LocalSandboxProvider(root=str(tmp_path))
    model = AfterToolResult(store)
    model.session_id = sid = await start_session(store, SMOKE["greeting"][2])
    outcome = await asyncio.wait_for(harness(store, provider, model).wake(sid), 5)  # awaiting the result: stuck
    assert outcome.status == "completed" and model.stored_at_call == [False]
    kinds = [e.type for e in await store.events(sid)]
    assert kinds[-3:] == ["tool.result", "model.response", "session.completed"] and kinds.count("tool.call") == 1
    await provider.close()


async def test_a_tool_result_that_cannot_commit_cancels_the_call_it_was_due_for_and_a_new_wake_recovers(tmp_path):
    store, provider = GatedStore(held={"tool.result"}, broken={"tool.result"}), LocalSandboxProvider(root=str(tmp_path))
    model = AfterToolResult(store, hold_s=30)
    model.session_id = sid = await start_session(store, SMOKE["greeting"][2])
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(harness(store, provider, model).wake(sid), 5)
    assert model.cancelled.is_set()
    kinds = [e.type for e in await store.events(sid)]
    assert "tool.call" in kinds and "tool.result" not in kinds  # the call is logged, its result is not
    store.broken.clear()
    outcome = await harness(store, provider).wake(sid)  # write_file is idempotent: it runs again
    assert outcome.status == "completed"
    await provider.close()


class LosingProvider(LocalSandboxProvider):
    """Hands whose first sandbox dies right after it is provisioned."""

    lost = False

    async def provision(self):
        sandbox = await super().provision()
        if not self.lost:
            self.lost = True
            await sandbox.close()
        return sandbox


async def test_lost_sandbox_is_a_tool_error_and_is_replaced(tmp_path):
    store, provider = MemoryStore(), LosingProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider), provider, *SMOKE["greeting"])
    assert record.verdict.success, record.verdict.detail
    events = await store.events(record.session_id)
    types = [e.type for e in events]
    assert types.count("sandbox.provisioned") == 2 and types.count("sandbox.lost") == 1
    first_result = next(e for e in events if e.type == "tool.result")
    assert first_result.data["is_error"] and "sandbox running this tool was lost" in first_result.data["output"]
    await provider.close()


@pytest.mark.parametrize(
    "policy, tool, input, rerun",
    [
        ("idempotent", "write_file", {"path": "a.txt", "content": "A"}, True),
        ("idempotent", "bash", {"command": "echo ran >> log.txt"}, False),
        ("error", "write_file", {"path": "a.txt", "content": "A"}, False),
        ("rerun", "bash", {"command": "echo ran >> log.txt"}, True),
    ],
)
async def test_interrupted_tool_call_follows_the_policy(tmp_path, policy, tool, input, rerun):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    use = {"type": "tool_use", "id": "toolu_x", "name": tool, "input": input}
    sid = await store.create_session({"system": ""})
    await store.append(sid, [
        Event("user.message", {"text": "go"}),
        Event("model.response", {"content": [use], "stop_reason": "tool_use"}),
        Event("tool.call", {"tool_use_id": "toolu_x", "name": tool, "input": input}),  # then the brain died
    ])
    model = ScriptedModel(lambda messages: lambda c: Reply("ok"))
    outcome = await harness(store, provider, model, interrupted=policy).wake(sid)
    assert outcome.status == "completed"
    result = next(e for e in await store.events(sid) if e.type == "tool.result")
    assert result.data["is_error"] is (not rerun)
    assert ("interrupted" in result.data["output"]) is (not rerun)
    await provider.close()


async def test_unknown_events_in_the_log_do_not_stop_a_wake(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await start_session(store, SMOKE["arithmetic"][2])
    await store.append(sid, [Event("telemetry.sampled", {"cpu": 0.5}, v=7)], expect=2)
    outcome = await harness(store, provider).wake(sid)
    assert (outcome.status, outcome.final_text) == ("completed", "391")


async def test_one_policy_book_solves_every_seed(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    setups, prompts = set(), set()
    for seed in (1, 2, 3):
        for suite, instance, task in load_suite("smoke", only=["find_needle", "count_rows"], seed=seed):
            setups.add(repr(task.files))
            prompts.add(task.prompt)
            record = await run_task(store, harness(store, provider), provider, suite, instance, task)
            assert record.verdict.success, (seed, task.name, record.verdict.detail)
    assert len(setups) == 6 and len(prompts) == 2  # the data differs by seed, the prompts do not
    await provider.close()


def test_harness_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="valid: idempotent, error, rerun"):
        harness(MemoryStore(), LocalSandboxProvider(root=str(tmp_path)), interrupted="maybe")
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        harness(MemoryStore(), LocalSandboxProvider(root=str(tmp_path)), max_turns=0)


async def test_a_tool_the_session_does_not_offer_is_refused(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await store.create_session({"system": "", "tools": ["read_file"]})
    await store.append(sid, [Event("user.message", {"text": "go"})])
    def policy(c):
        return Reply("gave up") if c.exchanges else Call("bash", {"command": "touch pwned"})

    outcome = await harness(store, provider, ScriptedModel(lambda messages: policy)).wake(sid)
    assert outcome.status == "completed"
    result = next(e for e in await store.events(sid) if e.type == "tool.result")
    assert result.data["is_error"] and "not offered in this session; offered: read_file" in result.data["output"]
    assert not [e for e in await store.events(sid) if e.type in ("tool.call", "sandbox.provisioned")]
    await provider.close()


async def test_a_hand_passed_to_another_brain_keeps_its_workspace_and_both_logs_say_so(tmp_path):
    from harnesses.hands import hand_over, live_sandbox_id
    from sandboxes.base import SandboxError

    store = MemoryStore()
    first, second = LocalSandboxProvider(root=str(tmp_path), keep=True), LocalSandboxProvider(root=str(tmp_path))
    giver = await harness(store, first).wake(await start_session(store, SMOKE["greeting"][2]))  # brain A writes hello.txt
    taker = await store.create_session({"task": "read", "system": ""})
    await store.append(taker, [Event("user.message", {"text": "What does hello.txt say?"})], expect=1)
    sandbox_id = await hand_over(store, giver.session_id, taker)

    def reader(c):
        if c.last is not None:
            return Reply(c.last.output)
        return Call("read_file", {"path": "hello.txt"})

    outcome = await harness(store, second, ScriptedModel(lambda messages: reader)).wake(taker)  # brain B, other hands object
    assert (outcome.status, outcome.final_text, outcome.sandbox_id) == ("completed", "hello, harnesslab\n", sandbox_id)
    given, taken = await store.events(giver.session_id), await store.events(taker)
    assert given[-1].type == "sandbox.handed" and given[-1].data == {"sandbox_id": sandbox_id, "hand_name": "main", "to_session": taker}
    assert [e.data for e in taken if e.type.startswith("sandbox.")] == [{"sandbox_id": sandbox_id, "hand_name": "main", "from_session": giver.session_id}]
    assert live_sandbox_id(given) is None and check_session(taker, taken) == []
    with pytest.raises(SandboxError, match="holds no sandbox as hand .main. to hand over"):
        await hand_over(store, giver.session_id, taker)
    await first.close()
    await second.close()
