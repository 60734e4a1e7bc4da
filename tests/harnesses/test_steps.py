"""next_step and events_to_messages: the harness's decisions are a pure function of the log."""
from __future__ import annotations

from harnesses.messages import events_to_messages
from harnesses.steps import CallModel, Ended, Finish, RunTools, next_step
from stores.base import Event


def log(*events: Event) -> list[Event]:
    return [e.at(i) for i, e in enumerate([Event("session.created", {}), *events])]


def response(*blocks: dict, stop: str = "end_turn") -> Event:
    return Event("model.response", {"content": list(blocks), "stop_reason": stop})


USE = {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "ls"}}
TEXT = {"type": "text", "text": "done"}


def test_no_user_message_waits_for_input():
    assert next_step(log(), 5) == Ended("awaiting_input", "the session has no user message yet")


def test_user_message_calls_the_model_first_of_turn():
    user = Event("user.message", {"text": "hi"}, ts=100.0)
    step = next_step(log(user), 5)
    assert step == CallModel(turn_started=100.0, first_of_turn=True)


def test_tool_use_without_result_runs_the_tool_and_knows_if_it_was_logged():
    events = log(Event("user.message", {"text": "hi"}), response(USE, stop="tool_use"))
    assert next_step(events, 5) == RunTools([USE], set())
    events = log(Event("user.message", {"text": "hi"}), response(USE, stop="tool_use"),
                 Event("tool.call", {"tool_use_id": "t1"}))
    assert next_step(events, 5) == RunTools([USE], {"t1"})


def test_answered_tools_call_the_model_again_not_first_of_turn():
    events = log(Event("user.message", {"text": "hi"}), response(USE, stop="tool_use"),
                 Event("tool.call", {"tool_use_id": "t1"}), Event("tool.result", {"tool_use_id": "t1", "output": "x"}))
    step = next_step(events, 5)
    assert isinstance(step, CallModel) and not step.first_of_turn


def test_text_only_response_finishes_with_its_text():
    events = log(Event("user.message", {"text": "hi"}), response(TEXT))
    assert next_step(events, 5) == Finish("completed", "end_turn", "done")


def test_max_turns_fails_the_session():
    events = log(Event("user.message", {"text": "hi"}), response(USE, stop="tool_use"),
                 Event("tool.result", {"tool_use_id": "t1"}))
    step = next_step(events, 1)
    assert isinstance(step, Finish) and step.status == "failed" and step.reason.startswith("max_turns")


def test_terminal_event_ends_until_a_new_user_message():
    done = log(Event("user.message", {"text": "hi"}), response(TEXT), Event("session.completed", {"reason": "end_turn", "final_text": "done"}))
    assert next_step(done, 5) == Ended("completed", "end_turn", "done")
    again = done + [Event("user.message", {"text": "more"}).at(len(done))]
    assert isinstance(next_step(again, 5), CallModel)


def test_messages_merge_tool_results_before_user_text_and_skip_bookkeeping():
    events = log(
        Event("user.message", {"text": "hi"}), Event("harness.woke", {}), response(USE, stop="tool_use"),
        Event("tool.call", {"tool_use_id": "t1"}), Event("sandbox.provisioned", {}),
        Event("user.message", {"text": "also"}), Event("tool.result", {"tool_use_id": "t1", "output": "x", "is_error": True}),
        Event("future.unknown", {"whatever": 1}, v=99),
    )
    assert events_to_messages(events) == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [USE]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "x", "is_error": True},
            {"type": "text", "text": "also"},
        ]},
    ]
