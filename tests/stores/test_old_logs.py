"""Logs and results files written before schema version 2 (tests/fixtures/schema_v1, written by the code of then)
still load everywhere: `sessions ls` and `show`, `report`, `replay` and `fork`, through the real CLI; the typed
readers of stores/events.py give the v2 view of v1 events; and what runs now writes v2."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from experiments.results.tables import read_table
from experiments.sessions.sources import open_source
from stores import events as logged
from stores.base import SCHEMA_VERSION, Event
from tests.experiments.cli.test_cli import harnesslab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schema_v1"
HANDS = "a0968c33f1a149ab9273d851169fec88"  # hands/: the shards task on hands a and b
FIX_BUG = "c0d3bd99bad9420f899e32193c4261c8"  # smoke/


@pytest.fixture(scope="module")
def old(tmp_path_factory) -> Path:
    """The v1 files, unzipped into a folder of their own."""
    root = tmp_path_factory.mktemp("schema_v1")
    for packed in FIXTURES.glob("*/*.gz"):
        (root / packed.parent.name).mkdir(exist_ok=True)
        (root / packed.parent.name / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
    return root


async def logs(source: Path) -> dict[str, list[Event]]:
    store = open_source(str(source))
    try:
        return {info.id: await store.events(info.id) for info in await store.sessions()}
    finally:
        await store.close()


def listed(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:-1]]


@pytest.mark.parametrize("source", ["smoke/results.duckdb", "smoke/sessions.sqlite", "hands/results.duckdb",
                                    "hands/sessions.sqlite", "sandbox_kill/results.duckdb"])
def test_sessions_ls_lists_every_session_of_an_old_file(old, source):
    run = source.split("/")[0]
    expected = sorted(read_table([old / run / "results.duckdb"], "sessions")["session_id"])
    done = harnesslab("sessions", "ls", str(old / source), cwd=old)
    assert done.returncode == 0, done.stderr
    assert sorted(listed(done.stdout)) == expected and done.stdout.splitlines()[-1].startswith(f"{len(expected)} session(s) in ")


def test_sessions_show_names_the_hand_of_every_call_and_sandbox_in_an_old_log(old):
    done = harnesslab("sessions", "show", HANDS[:6], str(old / "hands" / "results.duckdb"), "--width", "200", cwd=old)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"session {HANDS} · task shards (hands#0) · completed · 30 events")
    bash = [line.split(" on ")[1].split(" [")[0] for line in lines if "tool.call    bash on" in line]
    assert bash == ["hand a (local)", "hand b (local)"] * 4
    provisioned = [line.split(" as ")[1].split(" (")[0] for line in lines if "sandbox      provisioned" in line]
    assert provisioned == ["hand a", "hand b"]


async def test_sessions_show_names_the_lost_hand_of_an_old_log(old):
    source = old / "sandbox_kill" / "results.duckdb"
    session = next(sid for sid, events in (await logs(source)).items() if any(e.type == logged.SandboxLost.TYPE for e in events))
    done = harnesslab("sessions", "show", session, str(source), cwd=old)
    assert done.returncode == 0, done.stderr
    assert any(" LOST local-" in line and "(hand main (local)): " in line for line in done.stdout.splitlines()), done.stdout


def test_report_reads_old_results(old, tmp_path):
    files = [str(old / run / "results.duckdb") for run in ("smoke", "hands", "sandbox_kill")]
    done = harnesslab("report", *files, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 results file(s), 3 run(s), 7 sessions" in done.stdout
    assert "Recovery: 1 run(s) with worker processes, 5 faults injected" in done.stdout
    shards = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["shards"])
    assert shards.split()[1:6] == ["local", "2", "1", "1.0", "2"]  # sandbox, hands, sessions, success, hands used


def test_an_old_session_replays_to_the_same_results_and_the_replay_logs_v2(old, tmp_path):
    done = harnesslab("replay", FIX_BUG[:6], "--from", str(old / "smoke" / "results.duckdb"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "model calls answered from the recording: 4 (it logged 4 after position 2)" in done.stdout
    assert "tool results compared with the log: 3, diverged: 0" in done.stdout
    assert "outcome: completed end_turn; check: `python3 test_calc.py`: all tests passed" in done.stdout
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    versions = read_table([results], "events").set_index("position")["v"]
    assert versions[0] == SCHEMA_VERSION and versions[1] == 1  # created anew; the task copied as it was written
    assert set(versions[2:]) == {SCHEMA_VERSION}


async def test_a_fork_of_an_old_session_restores_both_its_hands_and_runs_on_them(old, tmp_path):
    done = harnesslab("fork", HANDS[:6], "--from", str(old / "hands" / "results.duckdb"), "--at", "25",
                      "harness.hands=[a,b]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "events [0, 25) copied; 9 tool call(s) run again to restore its sandbox" in done.stdout
    assert "tool results compared with the log: 9, diverged: 0" in done.stdout
    assert "outcome: completed end_turn; check: results.txt is as expected" in done.stdout
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    [events] = (await logs(results)).values()
    assert {e.v for e in events[1:25]} == {1} and {e.v for e in [events[0], *events[25:]]} == {SCHEMA_VERSION}  # copied as written
    restored = [e.data for e in events[25:] if e.type == logged.SandboxProvisioned.TYPE]
    assert sorted(d["hand_name"] for d in restored) == ["a", "b"] and not any("name" in d for d in restored)
    calls = [logged.ToolCall.read(e) for e in events[25:] if e.type == logged.ToolCall.TYPE]
    assert calls and all(call.hand_name == "a" and call.hand == "local" for call in calls)  # results.txt on the first


async def test_the_readers_give_the_v2_view_of_the_v1_events_on_disk(old):
    [events] = (await logs(old / "hands" / "sessions.sqlite")).values()
    assert {e.v for e in events} == {1}
    provisioned = [e for e in events if e.type == logged.SandboxProvisioned.TYPE]
    assert [logged.SandboxProvisioned.read(e).hand_name for e in provisioned] == [e.data["name"] for e in provisioned] == ["a", "b"]
    [woke] = [e for e in events if e.type == logged.HarnessWoke.TYPE]
    assert logged.HarnessWoke.read(woke).hand_names == woke.data["hands"] == ["a", "b"]
    lost = [logged.typed(e) for events in (await logs(old / "sandbox_kill" / "results.duckdb")).values()
            for e in events if e.type == logged.SandboxLost.TYPE]
    assert len(lost) == 5 and {(x.hand_name, x.hand) for x in lost} == {("main", "local")}


def test_v1_hand_overs_read_as_v2():
    handed = Event(logged.SandboxHanded.TYPE, {"sandbox_id": "s", "name": "b", "to": "taker"}, v=1)
    received = Event(logged.SandboxReceived.TYPE, {"sandbox_id": "s", "name": "main", "from": "giver"}, v=1)
    assert logged.typed(handed) == logged.SandboxHanded("s", "b", to_session="taker")
    assert logged.typed(received) == logged.SandboxReceived("s", "main", from_session="giver")
    assert logged.SandboxHanded.value(handed, "to_session") == "taker"
    assert logged.typed(Event(logged.SandboxHanded.TYPE, {"sandbox_id": "s", "name": "b", "to": "x"})).hand_name is None  # v2 reads v2 keys


EXAMPLES = [
    logged.SessionCreated({"task": "t", "system": "be brief"}),
    logged.UserMessage("hello"),
    logged.HarnessWoke("decoupled", 7, "host", "w0", ["a", "b"]),
    logged.ModelResponse([{"type": "text", "text": "hi"}], "end_turn", {"input_tokens": 3}, "m", "r", 1.0, 2.0, None, 3.0,
                         0.5, [], {"strategy": "full"}, 4.0, {"queue_ms": 1.0}),
    logged.ToolCall("t1", "bash", {"command": "true"}, "local", "s:t1", "main"),
    logged.ToolCall("t2", "get_events", {"start": 0}, logged.HARNESS_HAND, "s:t2", None),
    logged.ToolResult("t1", "bash", "ok", False, 1.5, "local-2"),
    logged.SandboxProvisioned("local-1", "a", "local", 1.0, 2.0, "local-0", {"from": "s", "calls": 2}),
    logged.SandboxLost("local-1", "a", "local", "killed"),
    logged.SandboxHanded("local-1", "a", "taker"),
    logged.SandboxReceived("local-1", "main", "giver"),
    logged.ContextCompacted("summary", 12, 6000, {"output_tokens": 9}, "m", "r", 1.0, 2.0, 3.0),
    logged.TaskChecked(True, "all tests passed", "w0", "host"),
    logged.SessionCompleted("end_turn", "done"),
    logged.SessionFailed("max_turns"),
    logged.AgentVersion({"name": "a"}), logged.SessionUpdated({"k": "v"}, "t", retitled=True), logged.SessionDeleted(),
    logged.WorkerResult("t1", "ok", False), logged.WorkQueued("work_1", "sesn_1"),
    logged.WorkPolled("work_1", "w", "its lease expired"), logged.WorkAcked("work_1", 300),
    logged.WorkHeartbeat("work_1", "2026-12-04T23:00:00Z", 300), logged.WorkStopped("work_1", True),
    logged.WorkUpdated("work_1", {"k": "v"}),
]


def test_every_type_the_project_writes_reads_back_as_written_and_as_v2():
    assert {type(example) for example in EXAMPLES} == set(logged.TYPES.values())
    for example in EXAMPLES:
        event = example.event()
        assert (event.type, event.v) == (example.TYPE, SCHEMA_VERSION) == (example.TYPE, 2)
        assert logged.typed(event) == type(example).read(event) == example
    assert "final_text" not in logged.SessionFailed("x").event().data  # an OPTIONAL field left unset is not written
    assert logged.ToolCall("t", hand_name=None).event().data["hand_name"] is None  # tool.call always says its hand name


def test_missing_fields_read_as_their_defaults_and_other_types_pass_through():
    assert logged.ToolResult.read(Event(logged.ToolResult.TYPE, {"tool_use_id": "t"})) == logged.ToolResult("t")
    assert logged.ModelResponse.read(Event(logged.ModelResponse.TYPE, {})).content is None  # malformed() names it
    assert logged.typed(Event("my.harness.note", {"anything": 1})) is None
    with pytest.raises(AttributeError, match="tool.result has no field 'hand'; its fields: tool_use_id, name"):
        logged.ToolResult.value(Event(logged.ToolResult.TYPE, {}), "hand")
    with pytest.raises(ValueError, match="a session ends with status 'paused'; valid: completed, failed"):
        logged.session_ended("paused", "why")
