"""model=replay: re-runs recorded sessions without a model, and names where a run diverges."""
from __future__ import annotations

import pytest

from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.replay import ReplayModel
from harnesses.models.scripted import ScriptedModel
from sandboxes.local import LocalSandboxProvider
from stores.archive import ArchiveStore, export_sessions
from stores.memory import MemoryStore
from tests.harnesses.doubles import conversation


async def run(model, tmp_path, seed=0):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path / "hands"))
    harness = DecoupledHarness(store, model, hands, FullContext())
    try:
        return store, [await run_task(store, harness, hands, *entry) for entry in load_suite("smoke", seed=seed)]
    finally:
        await hands.close()


async def recording(tmp_path):
    store, records = await run(ScriptedModel(policy_book()), tmp_path / "recorded")
    path = tmp_path / "results.duckdb"
    await export_sessions(store, path, run_id="recorded")
    return path, store, records


async def test_replay_reproduces_every_recorded_session_without_a_model(tmp_path):
    path, recorded_store, recorded = await recording(tmp_path)
    model = ReplayModel(ArchiveStore(path))
    await model.start()
    store, replayed = await run(model, tmp_path / "replayed")
    await model.close()
    assert all(r.verdict.success for r in replayed)
    for mine, theirs in zip(replayed, recorded):
        assert conversation(await store.events(mine.session_id)) == conversation(await recorded_store.events(theirs.session_id))
    first = next(e for e in await store.events(replayed[0].session_id) if e.type == "model.response")
    assert first.data["model"] == "replay:scripted" and first.data["request_id"].startswith(f"replay:{recorded[0].session_id}:")


async def test_a_run_that_differs_from_the_recording_is_a_divergence_with_its_position(tmp_path):
    path, _, _ = await recording(tmp_path)
    model = ReplayModel(ArchiveStore(path))
    _, records = await run(model, tmp_path / "other-seed", seed=5)  # other data: other tool results
    await model.close()
    by_task = {r.task: r for r in records}
    assert by_task["greeting"].verdict.success  # its data does not depend on the seed
    diverged = by_task["count_rows"].outcome
    assert diverged.status == "failed" and "Divergence: replay diverged from session" in diverged.reason
    assert "before its model.response at position" in diverged.reason and "message 2 differs" in diverged.reason


async def test_by_position_turn_calls_get_the_sessions_responses_and_compaction_calls_its_summaries():
    from harnesses.base import ModelRequest
    from stores.base import Event

    store = MemoryStore()
    session = await store.create_session({"task": "t"})
    turn = {"content": [{"type": "text", "text": "first"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3}}
    await store.append(session, [
        Event("user.message", {"text": "go"}), Event("model.response", turn),
        Event("context.compacted", {"summary": "so far: nothing", "to": 2, "usage": {"input_tokens": 9}, "model": "m"}),
        Event("model.response", {**turn, "content": [{"type": "text", "text": "second"}]}),
    ], expect=1)
    model = ReplayModel(store, session=session)
    ask = ModelRequest("", [{"role": "user", "content": "anything at all"}])
    first = await model.respond(ask)
    summary = await model.respond(ModelRequest("", [], purpose="compaction"))
    second = await model.respond(ask)
    assert [first.content[0]["text"], summary.content[0]["text"], second.content[0]["text"]] == ["first", "so far: nothing", "second"]
    assert first.usage.input_tokens == 3 and summary.usage.input_tokens == 9 and model.answered == 3
    with pytest.raises(Exception, match=r"has no more 'turn' responses after position 0: this run asks for more model calls"):
        await model.respond(ask)
    later = ReplayModel(store, session=session, after=4)  # a replay from position 4 on
    assert (await later.respond(ask)).content[0]["text"] == "second"
    with pytest.raises(Exception, match="has no more 'compaction' responses"):
        await later.respond(ModelRequest("", [], purpose="compaction"))
