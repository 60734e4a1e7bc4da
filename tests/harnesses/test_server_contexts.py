"""The context strategies that use the API's server-side context management (server_clear, server_compaction,
memory_tool): what they ask of the API, what the harness answers for the memory tool, how the offline brain reads what
the server did, and that their sessions replay without a model. The contract every strategy passes is test_contexts.py;
the server's side is test_emulator_conformance_context.py.
"""
from __future__ import annotations

import dataclasses

import pytest

from experiments.run.runner import run_task
from experiments.tasks import load_suite, policy_book
from harnesses.base import ModelRequest
from harnesses.contexts.memory_tool import API_TOOL, MemoryToolContext, memory_files, run
from harnesses.contexts.server_clear import ServerClearContext
from harnesses.contexts.server_compaction import ServerCompactionContext
from harnesses.contexts.vocabulary import API_CLEARED, MEMORY_NOTES, MEMORY_TOOL, NOTES_END, read_calls, read_task
from harnesses.decoupled import DecoupledHarness
from harnesses.emulator.context_edits import edited_prompt
from harnesses.models.emulator import EmulatorModel
from harnesses.models.offline_brain import Call, Conversation, _memory_tool_first, compaction_summary
from harnesses.models.replay import ReplayModel
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore

FAST = {"base_ttft_ms": 1, "prefill_ms_per_1k_tokens": 0, "output_tokens_per_s": 0, "jitter_sigma": 0}
REQUEST = ModelRequest("system", [{"role": "user", "content": [{"type": "text", "text": "task"}]}],
                       [{"name": "read_file", "input_schema": {"type": "object"}}, MemoryToolContext.tools[0].to_api()])


def use(i: int, name: str = "read_file", **input) -> dict:
    return {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": input or {"path": f"f{i}.txt"}}


def answered(i: int, text: str) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": text}]}


async def run_one(context, task: str, model=None, store=None, tmp_path=None):
    """One long-horizon (or smoke) task through the decoupled harness and the emulator; its record and log."""
    store, hands = store or MemoryStore(), LocalSandboxProvider(root=str(tmp_path))
    model = model or EmulatorModel(policy_book(), latency=FAST)
    await model.start()
    try:
        suite = "smoke" if task == "find_needle" else "long_horizon"
        record = await run_task(store, DecoupledHarness(store, model, hands, context, max_turns=200), hands,
                                *load_suite(suite, only=[task])[0])
        return record, await store.events(record.session_id), store
    finally:
        await model.close()
        await hands.close()


# -- what each strategy asks of the API -------------------------------------------------------------------------


def test_server_clear_asks_for_clearing_and_clears_thinking_first_when_thinking_is_on():
    shaped = ServerClearContext(trigger_tokens=2000, keep=4).shape(REQUEST)
    assert shaped.betas == ("context-management-2025-06-27",) and shaped.messages == REQUEST.messages
    [edit] = shaped.options["context_management"]["edits"]
    assert (edit["type"], edit["trigger"]["value"], edit["keep"]["value"]) == ("clear_tool_uses_20250919", 2000, 4)
    thinking = ServerClearContext(thinking={"type": "enabled", "budget_tokens": 1024}).shape(REQUEST)
    assert [e["type"] for e in thinking.options["context_management"]["edits"]] == ["clear_thinking_20251015", "clear_tool_uses_20250919"]
    with pytest.raises(ValueError, match="context.keep=-1; valid: a whole number >= 0"):
        ServerClearContext(keep=-1)


def test_server_compaction_asks_for_compaction_without_pausing():
    shaped = ServerCompactionContext(trigger_tokens=5000, instructions="keep the keys").shape(REQUEST)
    assert shaped.betas == ("compact-2026-01-12",)
    assert shaped.options["context_management"] == {"edits": [{"type": "compact_20260112", "pause_after_compaction": False,
        "trigger": {"type": "input_tokens", "value": 5000}, "instructions": "keep the keys"}]}
    with pytest.raises(ValueError, match="context.trigger_tokens=0"):
        ServerCompactionContext(trigger_tokens=0)


def test_memory_tool_is_offered_as_the_api_defines_it():
    shaped = MemoryToolContext().shape(REQUEST)
    assert shaped.tools == [REQUEST.tools[0], API_TOOL] and dataclasses.replace(shaped, tools=REQUEST.tools) == REQUEST


# -- the memory tool, answered from the log -----------------------------------------------------------------------


def test_memory_commands_answer_as_the_sdks_memory_tool_does():
    files = run({}, {"command": "create", "path": "/memories/a.md", "file_text": "one\ntwo"})[1]
    assert run(files, {"command": "view", "path": "/memories/a.md"})[0].endswith("     1\tone\n     2\ttwo")
    assert "2B\t/memories/sub/" not in run(files, {"command": "view", "path": "/memories"})[0]
    files = run(files, {"command": "insert", "path": "/memories/a.md", "insert_line": 1, "insert_text": "1.5"})[1]
    files = run(files, {"command": "str_replace", "path": "/memories/a.md", "old_str": "two", "new_str": "2"})[1]
    files = run(files, {"command": "rename", "old_path": "/memories/a.md", "new_path": "/memories/sub/b.md"})[1]
    assert files == {"/memories/sub/b.md": "one\n1.5\n2\n"}
    assert "/memories/sub/\n" in run(files, {"command": "view", "path": "/memories"})[0] + "\n"
    errors = [({"command": "view", "path": "/etc/passwd"}, "Path must start with /memories, got: /etc/passwd"),
              ({"command": "view", "path": "/memories/../etc"}, "would escape /memories directory"),
              ({"command": "view", "path": "/memories/none.md"}, "The path /memories/none.md does not exist"),
              ({"command": "create", "path": "/memories/sub/b.md", "file_text": ""}, "File /memories/sub/b.md already exists"),
              ({"command": "str_replace", "path": "/memories/sub/b.md", "old_str": "x", "new_str": ""}, "did not appear verbatim"),
              ({"command": "insert", "path": "/memories/sub/b.md", "insert_line": 9, "insert_text": "x"}, "within the range [0, 3]"),
              ({"command": "delete", "path": "/memories"}, "Cannot delete the /memories directory itself"),
              ({"command": "undo", "path": "/memories"}, "Unknown command: 'undo'")]
    for command, fragment in errors:
        with pytest.raises(Exception, match=None) as caught:
            run(files, command)
        assert fragment in str(caught.value), (command, caught.value)


async def test_memory_files_are_what_the_logged_commands_made():
    def call(i: int, input: dict, ok: bool = True) -> list[Event]:
        return [Event("tool.call", {"tool_use_id": f"t{i}", "name": MEMORY_TOOL, "input": input}, position=2 * i),
                Event("tool.result", {"tool_use_id": f"t{i}", "output": "", "is_error": not ok}, position=2 * i + 1)]
    log = [*call(0, {"command": "create", "path": MEMORY_NOTES, "file_text": "a"}),
           *call(1, {"command": "create", "path": "/memories/x.md", "file_text": "b"}, ok=False),
           *call(2, {"command": "str_replace", "path": MEMORY_NOTES, "old_str": "a", "new_str": "c"})]
    assert memory_files(log) == {MEMORY_NOTES: "c"}
    result = await MemoryToolContext(max_chars=3).run_tool(MEMORY_TOOL, {"command": "create", "path": "/memories/y.md",
                                                                           "file_text": "long"}, log)
    assert result.is_error and "holds at most 3" in result.output


# -- how the offline brain reads what the server did ----------------------------------------------------------


def test_the_brain_reads_the_apis_placeholder_as_a_cleared_result_and_reads_again():
    messages = [{"role": "user", "content": "task"}, {"role": "assistant", "content": [use(0)]}, answered(0, "secret " * 20)]
    body = {"messages": messages, "context_management": {"edits": [{"type": "clear_tool_uses_20250919",
            "trigger": {"type": "tool_uses", "value": 0}, "keep": {"type": "tool_uses", "value": 0}}]}}
    conversation = Conversation(edited_prompt(body).body["messages"])
    assert edited_prompt(body).body["messages"][2]["content"][0]["content"] == API_CLEARED
    assert conversation.checked("read_file", path="f0.txt") and conversation.output("read_file", path="f0.txt") is None


def test_the_brain_carries_on_from_a_compaction_summary_that_restates_the_task():
    messages = [{"role": "user", "content": "Find the key."}, {"role": "assistant", "content": [use(0)]}, answered(0, "key=7")]
    summary = compaction_summary(messages)
    assert read_task(summary) == "Find the key." and [r.output for r in read_calls(summary)] == ["key=7"]
    later = Conversation([{"role": "assistant", "content": [{"type": "compaction", "content": summary}]}])
    assert later.prompt == "Find the key." and later.output("read_file", path="f0.txt") == "key=7"


def test_the_brain_notes_calls_with_the_memory_tool_and_reads_them_back_when_the_window_lost_them():
    offered = ["read_file", MEMORY_TOOL]
    shown = [{"role": "user", "content": "task"}]
    for i in range(3):
        shown += [{"role": "assistant", "content": [use(i)]}, answered(i, f"out{i}")]
    first = _memory_tool_first(Conversation(shown), Call("read_file", {"path": "f3.txt"}), offered)
    assert (first.input["command"], first.input["path"]) == ("create", MEMORY_NOTES)
    assert first.input["file_text"].endswith(NOTES_END) and len(read_calls(first.input["file_text"])) == 3
    created = [*shown, {"role": "assistant", "content": [use(9, MEMORY_TOOL, **first.input)]}, answered(9, "File created")]
    for i in range(3, 6):
        created += [{"role": "assistant", "content": [use(i)]}, answered(i, f"out{i}")]
    more = _memory_tool_first(Conversation(created), Call("read_file", {"path": "f6.txt"}), offered)
    assert (more.input["command"], more.input["old_str"]) == ("str_replace", NOTES_END)
    late = [{"role": "user", "content": [{"type": "text", "text": "task"}, {"type": "text", "text": "[9 earlier turn(s) are not shown]"}]}]
    assert _memory_tool_first(Conversation(late), Call("read_file", {"path": "f0.txt"}), offered).input == {
        "command": "view", "path": "/memories"}
    listed = [*late, {"role": "assistant", "content": [use(10, MEMORY_TOOL, command="view", path="/memories")]},
              answered(10, f"Here're the files...\n0B\t/memories\n9B\t{MEMORY_NOTES}")]
    assert _memory_tool_first(Conversation(listed), Call("read_file", {"path": "f0.txt"}), offered).input == {
        "command": "view", "path": MEMORY_NOTES}
    notes = "Here's the content:\n" + "\n".join(f"{i + 1:>6}\t{line}" for i, line in enumerate(first.input["file_text"].splitlines()))
    read = Conversation([*listed, {"role": "assistant", "content": [use(11, MEMORY_TOOL, command="view", path=MEMORY_NOTES)]},
                         answered(11, notes)])
    assert read.output("read_file", path="f1.txt") == "out1"


# -- whole sessions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context, task, did", [
    (ServerClearContext(trigger_tokens=2000, keep=3), "refactor_16", "cleared"),
    (ServerCompactionContext(trigger_tokens=3000), "needles_20", "compacted"),
    (MemoryToolContext(turns=6), "needles_20", "noted"),
])
async def test_each_strategy_completes_a_long_task_and_replays_without_a_model(tmp_path, context, task, did):
    record, events, store = await run_one(context, task, tmp_path=tmp_path / "run")
    assert record.verdict.success, record.verdict.detail
    responses = [e.data for e in events if e.type == "model.response"]
    found = {"cleared": any((r.get("context_management") or {}).get("applied_edits") for r in responses),
             "compacted": any(b["type"] == "compaction" for r in responses for b in r["content"]),
             "noted": any(e.data["name"] == MEMORY_TOOL and e.data["input"]["command"] == "create" for e in events if e.type == "tool.call")}
    assert found[did], did
    replayed, again, _ = await run_one(context, task, model=ReplayModel(store, session=record.session_id), tmp_path=tmp_path / "replay")
    assert replayed.verdict.success
    calls = lambda log: [(e.data["name"], e.data["input"]) for e in log if e.type == "tool.call"]  # noqa: E731
    assert calls(again) == calls(events)
