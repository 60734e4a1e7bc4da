"""A strategy from the test folder only (custom_context.py) runs the long-horizon tasks through the emulator:
the offline brain reads what it hid through harnesses/contexts/vocabulary.py, knowing nothing of it."""
from __future__ import annotations

from experiments.results.invariants import check_session
from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.decoupled import DecoupledHarness
from harnesses.models.emulator import EmulatorModel
from sandboxes.local import LocalSandboxProvider
from stores.memory import MemoryStore
from tests.harnesses.custom_context import FirstAndLastContext

FAST = {"base_ttft_ms": 1, "prefill_ms_per_1k_tokens": 0, "output_tokens_per_s": 0, "jitter_sigma": 0}


async def test_a_strategy_defined_in_the_tests_solves_every_long_horizon_task_through_the_emulator(tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model, context = EmulatorModel(policy_book(), latency=FAST), FirstAndLastContext(first=2, last=4)
    harness = DecoupledHarness(store, model, hands, context, max_turns=200)
    await model.start()
    try:
        records = [await run_task(store, harness, hands, *entry) for entry in load_suite("long_horizon")]
        logs = [await store.events(r.session_id) for r in records]
    finally:
        await model.close()
        await hands.close()
    assert [r.task for r in records] == ["needles_20", "needles_60", "refactor_6", "refactor_16"]
    for record, events in zip(records, logs):
        assert record.verdict.success, (record.task, record.outcome.reason, record.verdict.detail)
        assert check_session(record.session_id, events) == []
        calls = [e for e in events if e.type == "model.response"]
        assert all(e.data["context"]["strategy"] == "first_and_last" for e in calls)
        shown = [e.data["context"]["messages"] for e in calls]
        assert max(shown) <= 1 + 2 * (2 + 4), record.task  # the middle turns were hidden, not sent
        reads = [e.data["input"]["path"] for e in events if e.type == "tool.call" and e.data["name"] == "read_file"]
        assert len(reads) == len(set(reads)), record.task  # what it hid stayed known: nothing was read twice
