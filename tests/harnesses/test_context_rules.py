"""Each context strategy's own rules: what enters the model's context, what is dropped, and how stable its
prefix stays. The contract every strategy passes is test_contexts.py."""
from __future__ import annotations

import json

import pytest

from experiments.results.invariants import check_session
from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.contexts.clear_tool_results import ClearToolResultsContext
from harnesses.contexts.compaction import CompactionContext
from harnesses.messages import events_to_messages
from harnesses.contexts.full import FullContext
from harnesses.contexts.memory import MemoryContext, current_memory
from harnesses.contexts.recall import RecallContext
from harnesses.contexts.window import WindowContext
from harnesses.decoupled import DecoupledHarness
from harnesses.messages import stable_prefix, without_cache_marks
from harnesses.models.scripted import ScriptedModel
from harnesses.contexts.vocabulary import estimate_tokens
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore


async def logged_session(tmp_path, context, task="find_needle"):
    """Run one smoke task through the decoupled harness with `context`; returns its record and log."""
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    [(suite, instance, chosen)] = load_suite("smoke", only=[task])
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), hands, context)
    record = await run_task(store, harness, hands, suite, instance, chosen)
    events = await store.events(record.session_id)
    await hands.close()
    return record, events


@pytest.fixture
async def long_log(tmp_path):
    record, events = await logged_session(tmp_path, FullContext())
    assert record.verdict.success and sum(e.type == "tool.result" for e in events) >= 20
    return events


async def test_window_keeps_the_task_and_the_last_turns(long_log):
    messages = await WindowContext(turns=4).build(long_log)
    responses = sum(e.type == "model.response" for e in long_log)
    assert sum(m["role"] == "assistant" for m in messages) == 4
    assert f"{responses - 4} earlier turn(s) of this session are not shown" in messages[0]["content"][-1]["text"]
    full = without_cache_marks(await FullContext().build(long_log))
    assert without_cache_marks(messages[1:]) == full[-7:]  # the log ends with the final reply: a, u, a, u, a, u, a


async def test_clear_tool_results_stubs_all_but_the_latest_in_batches(long_log):
    context = ClearToolResultsContext(keep=3, batch=4)
    messages = await context.build(long_log)
    results = [b for m in messages if m["role"] == "user" for b in m["content"] if b["type"] == "tool_result"]
    cleared = [b for b in results if b["content"].startswith("[tool result cleared")]
    assert len(cleared) == (len(results) - 3) // 4 * 4 and results[-3:] == [b for b in results[-3:] if b not in cleared]
    assert "call the tool again" in cleared[0]["content"]
    uses = [b for m in messages if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]
    assert len(uses) == len(results)  # the calls stay: the model sees what it asked, and can ask again


async def test_prefix_stability_full_and_clearing_between_batches_keep_the_prefix_a_sliding_window_does_not(long_log):
    async def stability(context, log):
        cuts = [i + 1 for i, e in enumerate(log) if e.type == "tool.result"]
        builds = [await context.build(log[:cut]) for cut in cuts]
        return [stable_prefix(a, b) / len(a) for a, b in zip(builds, builds[1:])]

    assert all(share == 1 for share in await stability(FullContext(), long_log))
    clearing = await stability(ClearToolResultsContext(keep=3, batch=4), long_log)
    assert clearing.count(1.0) >= 0.6 * len(clearing) and min(clearing) < 1  # stable except when a batch is cleared
    window = await stability(WindowContext(turns=4), long_log)
    assert max(window[-5:]) < 0.2  # once it slides, only the task is the same


@pytest.mark.parametrize("context, succeeds", [
    (WindowContext(turns=3), False),  # the file listing slides out, and the search starts over: it runs out of turns
    (ClearToolResultsContext(keep=2, batch=2), True),  # the calls stay visible: it knows what it already read
])
async def test_a_strategy_that_drops_a_needed_fact_makes_the_brain_refetch_or_fail(tmp_path, context, succeeds):
    record, events = await logged_session(tmp_path, context)
    assert record.verdict.success is succeeds, record.verdict.detail
    responses = [e for e in events if e.type == "model.response"]
    assert all(r.data["context"]["strategy"] == context.name for r in responses)
    assert check_session(record.session_id, events) == []  # tool-use ids stay unique though the context shows a part
    if not succeeds:
        assert "max_turns" in record.outcome.reason


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="context.turns must be at least 1"):
        WindowContext(turns=0)
    with pytest.raises(ValueError, match="context.keep must be >= 0"):
        ClearToolResultsContext(keep=-1)


async def test_compaction_logs_a_summary_of_the_positions_it_covers_and_later_contexts_use_it(tmp_path):
    context = CompactionContext(threshold_tokens=1500, keep_turns=2)
    record, events = await logged_session(tmp_path, context)
    assert record.verdict.success, record.verdict.detail
    compactions = [e for e in events if e.type == "context.compacted"]
    assert compactions and check_session(record.session_id, events) == []
    for compaction in compactions:
        assert events[compaction.data["to"]].type == "model.response"  # the cut falls at the start of a turn
        assert compaction.data["summary"].startswith("[summary of the session so far")
        assert compaction.data["usage"]["input_tokens"] > 0  # it cost a model call, counted with the others
    after = next(e for e in events if e.type == "model.response" and e.position > compactions[-1].position)
    seen = await context.build(events[:after.position])
    assert seen[0]["content"][1]["text"] == compactions[-1].data["summary"]
    full = await FullContext().build(events[:after.position])
    assert estimate_tokens(seen) < estimate_tokens(full) and len(seen) < len(full)
    assert sum(e.type == "tool.result" for e in events) >= 20  # the originals stay in the log
    for earlier, later in zip(compactions, compactions[1:]):  # each folds in half a threshold of new turns at least
        folded = events_to_messages(e for e in events[earlier.data["to"]:later.position] if e.type != "context.compacted")
        assert estimate_tokens(folded) >= 750


async def test_compaction_is_lossy_where_the_summary_drops_what_a_task_needs(tmp_path):
    """An offline model's summary keeps the head of each output: a fact beyond it must be fetched again."""
    from harnesses.models.offline_brain import SUMMARY_OUTPUT_CHARS, Conversation, summary

    long_output = "x" * SUMMARY_OUTPUT_CHARS + " the access code is 1234"
    messages = [{"role": "user", "content": "task"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "read_file", "input": {"path": "f"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": long_output}]}]
    folded = Conversation([{"role": "user", "content": [{"type": "text", "text": "task"}, {"type": "text", "text": summary(Conversation(messages))}]}])
    assert folded.checked("read_file", path="f") and "1234" not in folded.output("read_file", path="f")


async def test_recall_reads_positional_slices_and_searches_the_log(long_log):
    recall = RecallContext(turns=3)
    sliced = await recall.run_tool("get_events", {"start": 1, "stop": 4}, long_log)
    assert [json.loads(line)["position"] for line in sliced.output.splitlines()] == [1, 2, 3] and not sliced.is_error
    found = await recall.run_tool("search_events", {"query": '"path": "docs/note_05.txt"'}, long_log)
    kinds = [json.loads(line)["type"] for line in found.output.splitlines()]
    assert kinds == ["tool.call", "tool.result"]  # the call that read it, with its result
    assert "Meeting notes #5" in json.loads(found.output.splitlines()[1])["data"]["output"]
    bad = await recall.run_tool("get_events", {"start": -1}, long_log)
    assert bad.is_error and "get_events takes {start: integer, stop?: integer}" in bad.output
    assert (await recall.run_tool("search_events", {"query": "no such text"}, long_log)).output == "no events"


async def test_recall_is_answered_by_the_harness_and_rescues_what_a_window_drops(tmp_path):
    journal = tmp_path / "journal.jsonl"
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path / "hands"), journal=str(journal))
    [(suite, instance, task)] = load_suite("smoke", only=["find_needle"])
    harness = DecoupledHarness(store, ScriptedModel(policy_book()), hands, RecallContext(turns=3))
    record = await run_task(store, harness, hands, suite, instance, task)
    events = await store.events(record.session_id)
    await hands.close()
    assert record.verdict.success, record.verdict.detail  # where window=3 alone runs out of turns (above)
    recalls = [e for e in events if e.type == "tool.call" and e.data["name"] in ("get_events", "search_events")]
    assert recalls and all(e.data["hand"] == "harness" for e in recalls)
    started = {json.loads(line)["tool"] for line in journal.read_text().splitlines()}
    assert not started & {"get_events", "search_events"}  # never the sandbox
    assert check_session(record.session_id, events) == []


async def test_memory_is_the_latest_accepted_write_shown_at_the_top_and_rescues_what_a_window_drops(tmp_path):
    store, hands = MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    [(suite, instance, task)] = load_suite("smoke", only=["find_needle"])
    context = MemoryContext(turns=3)
    record = await run_task(store, DecoupledHarness(store, ScriptedModel(policy_book()), hands, context), hands, suite, instance, task)
    events = await store.events(record.session_id)
    await hands.close()
    assert record.verdict.success, record.verdict.detail  # where window=3 alone runs out of turns (above)
    notes = [e for e in events if e.type == "tool.call" and e.data["name"] == "memory_append"]
    assert len(notes) >= 3 and all(e.data["hand"] == "harness" for e in notes)
    assert current_memory(events) == "".join(f"{e.data['input']['text']}\n" for e in notes)
    shown = await context.build(events)
    assert shown[0]["content"][-1]["text"] == f"[your memory file]\n{current_memory(events)}"
    rewritten = events + [Event("tool.call", {"tool_use_id": "w", "name": "memory_write", "input": {"content": "fresh"}}, position=len(events)),
                          Event("tool.result", {"tool_use_id": "w", "output": "ok", "is_error": False}, position=len(events) + 1)]
    assert current_memory(rewritten) == "fresh"
    too_long = await MemoryContext(max_chars=10).run_tool("memory_write", {"content": "x" * 11}, events)
    assert too_long.is_error and "holds at most 10" in too_long.output
