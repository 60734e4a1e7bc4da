"""Several named hands per brain: routing by name, calls on different hands at once, hand-over by name."""
from __future__ import annotations

import asyncio

import pytest

from experiments.results.invariants import check_session
from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.hands import first_hand, hand_over, live_sandbox_id
from harnesses.messages import events_to_messages
from harnesses.models.scripted import ScriptedModel
from harnesses.models.offline_brain import Call, Reply
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore

[SHARDS] = load_suite("hands")


def harness(store, provider, hands, model=None) -> DecoupledHarness:
    return DecoupledHarness(store, model or ScriptedModel(policy_book()), provider, FullContext(), hands=hands)


async def session(store, text: str) -> str:
    sid = await store.create_session({"task": "t", "system": ""})
    await store.append(sid, [Event("user.message", {"text": text})], expect=1)
    return sid


@pytest.mark.parametrize("hands", [None, ["a", "b"], ["a", "b", "c", "d"]])
async def test_shards_spread_over_the_hands_and_run_at_the_same_time(hands, tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider, hands), provider, *SHARDS)
    assert record.verdict.success, record.verdict.detail
    events = await store.events(record.session_id)
    assert check_session(record.session_id, events) == []
    names = hands or ["main"]
    provisioned = [e.data["hand_name"] for e in events if e.type == "sandbox.provisioned"]
    assert sorted(provisioned) == sorted(names) and len({e.data["sandbox_id"] for e in events if e.type == "sandbox.provisioned"}) == len(names)
    calls = [e for e in events if e.type == "tool.call" and e.data["name"] == "bash"]
    assert all(c.data["hand_name"] == c.data["input"].get("hand", "main") for c in calls)
    assert sorted(c.data["hand_name"] for c in calls) == sorted(names[i % len(names)] for i in range(8))
    # every hand's first shard was called before any shard finished: they ran at the same time
    first_result = next(e.position for e in events if e.type == "tool.result" and e.data["name"] == "bash")
    assert len({c.data["hand_name"] for c in calls if c.position < first_result}) == len(names)
    assert first_hand(events) == names[0] and record.outcome.sandbox_id == live_sandbox_id(events, names[0])
    # the model sees the results in the order it asked for them, whatever order they finished in
    asked = next(m for m in events_to_messages(events) if m["role"] == "assistant" and len(m["content"]) == 8)
    results = next(m for m in events_to_messages(events) if m["role"] == "user" and len(m["content"]) == 8)["content"]
    assert [b["tool_use_id"] for b in results] == [b["id"] for b in asked["content"]]


async def test_each_hand_has_its_own_workspace_and_a_wrong_hand_is_named(tmp_path):
    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    steps = iter([
        [Call("write_file", {"path": "x.txt", "content": "on a", "hand": "a"})],
        [Call("read_file", {"path": "x.txt", "hand": "b"}), Call("read_file", {"path": "x.txt"}),
         Call("read_file", {"path": "x.txt", "hand": "z"})],
    ])
    seen = []

    def policy(c):
        if c.last is not None and c.last.name == "read_file":
            seen.extend((e.input.get("hand"), e.output, e.is_error) for e in c.exchanges[1:])
            return Reply("done")
        assert c.hands == ("a", "b")
        return next(steps)

    outcome = await harness(store, provider, ["a", "b"], ScriptedModel(lambda messages: policy)).wake(await session(store, "go"))
    assert outcome.status == "completed"
    assert seen[0][0] == "b" and seen[0][2] and "x.txt" in seen[0][1]  # b's workspace has no x.txt
    assert seen[1] == (None, "on a", False)  # no hand named: the first
    assert seen[2] == ("z", "hand 'z' is not one of this session's hands; valid: a, b", True)
    offered = harness(store, provider, ["a", "b"]).router.offered({})
    assert all(t["input_schema"]["properties"]["hand"]["enum"] == ["a", "b"] for t in offered)
    assert "hand" not in harness(store, provider, None).router.offered({})[0]["input_schema"]["properties"]


@pytest.mark.parametrize("hands", [[], ["a", "a"], ["A"], ["a b"], [3]])
def test_bad_hand_names_say_what_is_valid(hands, tmp_path):
    with pytest.raises(ValueError, match="distinct names of lowercase letters"):
        harness(MemoryStore(), LocalSandboxProvider(root=str(tmp_path)), hands)


async def test_a_named_hand_is_handed_to_another_brain(tmp_path):
    store = MemoryStore()
    first, second = LocalSandboxProvider(root=str(tmp_path), keep=True), LocalSandboxProvider(root=str(tmp_path))
    giver = await run_task(store, harness(store, first, ["a", "b"]), first, *SHARDS)
    b = live_sandbox_id(await store.events(giver.session_id), "b")
    taker = await session(store, "What does seed.txt say?")
    assert await hand_over(store, giver.session_id, taker, hand="b", as_hand="main") == b

    def reader(c):
        return Reply(c.last.output) if c.last else Call("read_file", {"path": "seed.txt"})

    outcome = await harness(store, second, None, ScriptedModel(lambda messages: reader)).wake(taker)
    assert outcome.status == "completed" and outcome.sandbox_id == b and len(outcome.final_text) == 8
    given = await store.events(giver.session_id)
    assert given[-1].data == {"sandbox_id": b, "hand_name": "b", "to_session": taker}
    assert live_sandbox_id(given, "b") is None and live_sandbox_id(given, "a") is not None
    await first.close()
    await second.close()


async def test_a_hand_that_fails_the_session_stops_the_others_writing_to_its_log(tmp_path):
    from sandboxes.base import SandboxError

    class BrokenOnBoom(LocalSandboxProvider):
        async def provision(self):
            sandbox = await super().provision()
            execute = sandbox.execute

            async def refusing(name, input, key=None):
                if input.get("path") == "boom":
                    raise SandboxError("the engine refused the call")
                return await execute(name, input, key)

            sandbox.execute = refusing
            return sandbox

    def policy(c):
        return [Call("bash", {"command": "sleep 1; echo slow", "hand": "a"}), Call("read_file", {"path": "boom", "hand": "b"})]

    store, provider = MemoryStore(), BrokenOnBoom(root=str(tmp_path))
    sid = await session(store, "go")
    outcome = await harness(store, provider, ["a", "b"], ScriptedModel(lambda messages: policy)).wake(sid)
    assert outcome.status == "failed" and "the engine refused the call" in outcome.reason
    await asyncio.sleep(1.5)  # long enough for the slow call to have finished, had it not been stopped
    events = await store.events(sid)
    assert events[-1].type == "session.failed" and check_session(sid, events) == []
    slow = [e.data["output"] for e in events if e.type == "tool.result" and e.data["name"] == "bash"]
    assert slow == [f"not completed: the session failed ({outcome.reason})"]
    await provider.close()


async def test_a_fork_restores_every_hand_in_the_state_the_prefix_left(tmp_path):
    from experiments.replay.fork import load_origin, start_fork

    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    record = await run_task(store, harness(store, provider, ["a", "b"]), provider, *SHARDS)
    origin = await load_origin(store, record.session_id)
    end = next(e.position for e in origin.events if e.type == "session.completed")
    fork, restored, divergences = await start_fork(store, provider, origin, end)
    assert divergences == [] and restored == 10  # shards.txt read on a, 8 shards over both hands, results.txt on a
    events = await store.events(fork)
    fresh = {e.data["hand_name"]: e.data["sandbox_id"] for e in events[end:] if e.type == "sandbox.provisioned"}
    assert sorted(fresh) == ["a", "b"] and live_sandbox_id(events, "a") == fresh["a"]
    a, b = await provider.attach(fresh["a"]), await provider.attach(fresh["b"])
    assert not (await a.execute("read_file", {"path": "results.txt"})).is_error
    assert (await b.execute("read_file", {"path": "results.txt"})).is_error  # written on a only, as in the origin
    await provider.close()


async def test_a_fork_restores_a_received_hand_from_the_calls_of_the_session_that_handed_it_on(tmp_path):
    from experiments.replay.fork import load_origin, start_fork

    def writes(path: str):
        return lambda c: Call("write_file", {"path": path, "content": path.upper()}) if c.last is None else Reply("done")

    store, provider = MemoryStore(), LocalSandboxProvider(root=str(tmp_path), keep=True)
    giver = await store.create_session({"task": "a", "system": "", "setup": {"files": {"seed.txt": "A's setup"}}})
    await store.append(giver, [Event("user.message", {"text": "write a.txt"})], expect=1)
    await harness(store, provider, None, ScriptedModel(lambda messages: writes("a.txt"))).wake(giver)
    taker = await session(store, "write b.txt")  # a session with no setup of its own
    await hand_over(store, giver, taker)
    await harness(store, provider, None, ScriptedModel(lambda messages: writes("b.txt"))).wake(taker)

    origin = await load_origin(store, taker)
    assert list(origin.givers) == [giver]
    end = next(e.position for e in origin.events if e.type == "session.completed")
    fork, restored, divergences = await start_fork(store, provider, origin, end)
    assert (restored, divergences) == (2, [])  # a.txt written again as the giver did, then b.txt
    workspace = await provider.attach(live_sandbox_id(await store.events(fork)))
    files = {path: (await workspace.execute("read_file", {"path": path})).output for path in ("seed.txt", "a.txt", "b.txt")}
    assert files == {"seed.txt": "A's setup", "a.txt": "A.TXT", "b.txt": "B.TXT"}
    await provider.close()
