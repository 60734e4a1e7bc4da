"""Hands replaced however they were lost (found gone as a call starts, lost during one, handed on): the first
result from the new hands tells the model that earlier changes are gone, and the log says so."""
from __future__ import annotations

import pytest

from experiments.results.invariants import check_session
from experiments.run.runner import check, run_task
from harnesses.contexts.full import FullContext
from harnesses.coupled import CoupledHarness
from harnesses.decoupled import DecoupledHarness
from harnesses.hands import NEW_SANDBOX, hand_over, live_sandbox_id
from harnesses.models.scripted import ScriptedModel
from harnesses.models.offline_brain import Call, Reply
from sandboxes.base import Setup
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.events import SandboxLost
from stores.memory import MemoryStore
from stores.sqlite import SqliteStore
from tests.harnesses.doubles import Crash, CrashAfterToolResult, CrashOnAppend, start_session
from tests.harnesses.test_decoupled import SMOKE, LosingProvider, harness

SAVE, READ = "Save the notes.", "What do the notes say?"
LOST = f"{NEW_SANDBOX} The sandbox this session held was lost ("
GONE = "so this call ran in a fresh sandbox that holds only the task's setup: every change earlier tool calls made to files is gone."


class Recording(ScriptedModel):
    """A scripted model that keeps every request it answers: what the model was told."""

    def __init__(self, policy):
        super().__init__(lambda messages: policy)
        self.requests = []

    async def respond(self, request):
        self.requests.append(request)
        return await super().respond(request)

    def told(self) -> list[dict]:
        """The tool results in the last request's last message."""
        return [b for b in self.requests[-1].messages[-1]["content"] if b["type"] == "tool_result"]


def notes(hands=(None,)):
    """Turn 1 writes notes.txt on each hand; turn 2 reads it back from each."""
    def on(hand):
        return {"hand": hand} if hand else {}

    def policy(c):
        if c.user_texts[-1] == SAVE:
            if c.checked("write_file", path="notes.txt"):
                return Reply("saved")
            return [Call("write_file", {"path": "notes.txt", "content": f"notes on {h}", **on(h)}) for h in hands]
        if c.results("read_file", path="notes.txt"):
            return Reply("read")
        return [Call("read_file", {"path": "notes.txt", **on(h)}) for h in hands]

    return policy


async def saved_then_asked(store, provider, hands=None) -> str:
    """A session whose first turn saved the notes and whose second turn (the next user message) is due."""
    sid = await store.create_session({"task": "notes", "system": ""})
    await store.append(sid, [Event("user.message", {"text": SAVE})], expect=1)
    outcome = await DecoupledHarness(store, Recording(notes(hands or (None,))), provider, FullContext(), hands=hands).wake(sid)
    assert outcome.status == "completed"
    await store.append(sid, [Event("user.message", {"text": READ})], expect=(await store.session(sid)).length)
    return sid


async def destroy(provider, events, hand="main") -> str:
    """The sandbox the log names as `hand`, destroyed (its machine died): the next wake finds it gone."""
    sandbox_id = live_sandbox_id(events, hand)
    await (await provider.attach(sandbox_id)).close()
    return sandbox_id


def since(events, position):
    return [(e.type, e.data) for e in events[position:] if e.type.startswith(("sandbox.", "tool."))]


async def test_hands_found_gone_as_a_call_starts_are_replaced_and_the_model_is_told(provider):
    store = MemoryStore()
    sid = await saved_then_asked(store, provider)
    asked = (await store.session(sid)).length
    old = await destroy(provider, await store.events(sid))

    model = Recording(notes())
    outcome = await DecoupledHarness(store, model, provider, FullContext()).wake(sid)  # a new harness, as a worker's
    assert outcome.status == "completed" and outcome.sandbox_id != old
    [told] = model.told()
    assert told["content"].startswith(LOST) and GONE in told["content"] and told["is_error"]  # notes.txt is gone too
    events = await store.events(sid)
    [call, lost, provisioned, result] = since(events, asked)
    assert (call[0], lost[0], provisioned[0], result[0]) == ("tool.call", "sandbox.lost", "sandbox.provisioned", "tool.result")
    assert lost[1]["sandbox_id"] == old and lost[1]["reason"] and lost[1]["reason"] in told["content"]
    assert provisioned[1]["replaces"] == old and provisioned[1]["sandbox_id"] == outcome.sandbox_id
    assert result[1]["new_sandbox"] == outcome.sandbox_id and result[1]["output"] == told["content"]
    assert check_session(sid, events) == []


async def test_with_several_hands_only_the_replaced_one_is_named_and_told(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await saved_then_asked(store, provider, ["a", "b"])
    asked = (await store.session(sid)).length
    old = await destroy(provider, await store.events(sid), "b")

    model = Recording(notes(("a", "b")))
    outcome = await DecoupledHarness(store, model, provider, FullContext(), hands=["a", "b"]).wake(sid)
    assert outcome.status == "completed"
    on_a, on_b = model.told()
    assert on_a["content"] == "notes on a" and not on_a["is_error"]
    assert on_b["content"].startswith(f"{NEW_SANDBOX} The sandbox this session held as hand 'b' was lost (") and GONE in on_b["content"]
    events = await store.events(sid)
    changes = [(t, d["hand_name"]) for t, d in since(events, asked) if t.startswith("sandbox.")]
    assert changes == [("sandbox.lost", "b"), ("sandbox.provisioned", "b")]
    assert [d.get("new_sandbox") for t, d in since(events, asked) if t == "tool.result"] == [None, live_sandbox_id(events, "b")]
    assert live_sandbox_id(events, "b") != old
    await provider.close()


async def test_hands_lost_during_a_call_are_told_of_by_the_same_notice_at_the_next(tmp_path):
    store, provider = MemoryStore(), LosingProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider), provider, *SMOKE["greeting"])
    assert record.verdict.success, record.verdict.detail
    results = [e.data for e in await store.events(record.session_id) if e.type == "tool.result"]
    assert results[0]["is_error"] and "the sandbox running this tool was lost while it ran" in results[0]["output"]
    assert results[1]["output"].startswith(LOST) and results[1]["new_sandbox"] == record.outcome.sandbox_id
    await provider.close()


@pytest.mark.parametrize("n", [3, 5])
async def test_a_worker_whose_machine_died_gets_new_hands_and_the_model_redoes_its_changes(tmp_path, n):
    """rename_function cut after its first (n=3) or second (n=5) file rewritten, on a machine whose hands die with
    it; the next worker's hands are elsewhere. Told that the rewrites are gone, the model makes them again."""
    suite, instance, task = SMOKE["rename_function"]
    store = SqliteStore(tmp_path / "log.sqlite")
    sid = await start_session(store, task)
    with pytest.raises(Crash):
        await harness(CrashAfterToolResult(store, n), LocalSandboxProvider(root=str(tmp_path / "dead"))).wake(sid)

    hands = LocalSandboxProvider(root=str(tmp_path / "other"))
    outcome = await harness(store, hands).wake(sid)
    verdict = await check(task, outcome, hands, Setup.from_meta(task.meta(suite)["setup"]))
    assert outcome.status == "completed" and verdict.success, verdict.detail
    events = await store.events(sid)
    first_new = next(e.data for e in events if e.type == "tool.result" and "new_sandbox" in e.data)
    assert first_new["output"].startswith(LOST) and first_new["new_sandbox"] == outcome.sandbox_id
    assert check_session(sid, events) == []
    await store.close()
    await hands.close()


async def test_the_model_is_told_even_if_the_harness_died_before_the_first_result_from_new_hands(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await saved_then_asked(store, provider)
    await destroy(provider, await store.events(sid))
    # the harness dies while the first result from new hands commits; the new hands live on
    crashing = CrashOnAppend(store, lambda event: "new_sandbox" in event.data, "before the model was told")
    with pytest.raises(Crash):
        await DecoupledHarness(crashing, Recording(notes()), provider, FullContext()).wake(sid)
    replacement = live_sandbox_id(await store.events(sid))

    model = Recording(notes())
    outcome = await DecoupledHarness(store, model, provider, FullContext()).wake(sid)  # reattaches to the new hands
    assert outcome.status == "completed" and outcome.sandbox_id == replacement
    [told] = model.told()
    assert told["content"].startswith(LOST)
    assert [e.type for e in await store.events(sid)].count("sandbox.provisioned") == 2  # no third: told once, then not
    await provider.close()


async def test_a_session_that_handed_its_hands_on_is_told_its_next_ones_are_new(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await saved_then_asked(store, provider)
    taker = await store.create_session({"task": "t", "system": ""})
    await hand_over(store, sid, taker)

    model = Recording(notes())
    assert (await DecoupledHarness(store, model, provider, FullContext()).wake(sid)).status == "completed"
    [told] = model.told()
    assert told["content"].startswith(f"{NEW_SANDBOX} The sandbox this session held was handed to session {taker}, ")
    assert GONE in told["content"]
    await provider.close()


async def test_a_received_sandbox_found_gone_is_replaced_and_the_taker_told(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    giver = await saved_then_asked(store, provider)
    taker = await store.create_session({"task": "t", "system": ""})
    await store.append(taker, [Event("user.message", {"text": READ})], expect=1)
    await destroy(provider, await store.events(giver))
    await hand_over(store, giver, taker)

    model = Recording(notes())
    assert (await DecoupledHarness(store, model, provider, FullContext()).wake(taker)).status == "completed"
    [told] = model.told()
    assert told["content"].startswith(LOST) and GONE in told["content"]
    await provider.close()


async def test_a_coupled_session_whose_log_says_its_sandbox_was_lost_fails_instead_of_getting_new_hands(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    sid = await saved_then_asked(store, provider)
    events = await store.events(sid)
    lost = SandboxLost(live_sandbox_id(events), "main", "local", "killed").event()
    await store.append(sid, [lost], expect=len(events))  # logged by a harness that died before failing the session

    outcome = await CoupledHarness(store, Recording(notes()), provider, FullContext()).wake(sid)
    assert outcome.status == "failed" and "PetLost: the sandbox holding this session was lost (killed)" in outcome.reason
    assert "sandbox.provisioned" not in [e.type for e in (await store.events(sid))[len(events):]]
    await provider.close()
