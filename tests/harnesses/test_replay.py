"""model=replay: re-runs recorded sessions without a model, and names where a run diverges."""
from __future__ import annotations

import pytest

from experiments.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.replay import ReplayModel
from harnesses.models.scripted import ScriptedModel
from sandboxes.local import LocalSandboxProvider
from stores.archive import ArchiveStore, export_sessions
from stores.memory import MemoryStore
from tests.harnesses.test_decoupled import conversation


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


async def test_a_prompt_never_recorded_is_named(tmp_path):
    model = ReplayModel(MemoryStore())
    from harnesses.base import ModelRequest

    with pytest.raises(Exception, match="no recorded session starts with 'hello'"):
        await model.respond(ModelRequest("", [{"role": "user", "content": "hello"}]))
