"""The invariant checker: quiet on real logs, and every rule catches its violation with its position."""
from __future__ import annotations

import pytest

from experiments.results.invariants import check_session
from stores.base import Event

USE = {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "ls"}}


def log(*events: Event, positions: list[int] | None = None) -> list[Event]:
    events = [Event("session.created", {}), Event("user.message", {"text": "go"}), *events]
    return [e.at(p) for e, p in zip(events, positions or range(len(events)))]


GOOD = [
    Event("model.response", {"content": [USE]}), Event("tool.call", {"tool_use_id": "t1"}),
    Event("tool.result", {"tool_use_id": "t1", "output": "x"}), Event("model.response", {"content": []}),
    Event("session.completed", {"reason": "end_turn"}),
]


def test_a_well_formed_log_passes():
    assert check_session("s", log(*GOOD)) == []


@pytest.mark.parametrize(
    "events, positions, rule, position",
    [
        (GOOD, [0, 1, 2, 3, 5, 6, 7], "contiguous positions", 5),
        ([GOOD[0], GOOD[1], GOOD[1], *GOOD[2:]], None, "one tool.call per tool use", 4),
        ([GOOD[0], GOOD[1], GOOD[2], GOOD[2], *GOOD[3:]], None, "one tool.result per tool use", 5),
        ([Event("tool.result", {"tool_use_id": "zz"}), *GOOD[3:]], None, "results answer a tool_use", 2),
        ([GOOD[0], GOOD[1], GOOD[4]], None, "calls are answered", 3),
        (GOOD[:3], None, "every session ends", None),
        ([*GOOD[:4], Event("session.failed", {})], None, "failures have a reason", 6),
    ],
)
def test_each_rule_names_its_violation_and_position(events, positions, rule, position):
    found = check_session("s1", log(*events, positions=positions))
    assert [(v.rule, v.position) for v in found if v.rule == rule] == [(rule, position)], found
    assert all(str(v).startswith("session s1") for v in found)


def test_a_log_must_start_with_session_created():
    events = [Event("user.message", {}).at(0), Event("session.completed", {"reason": "x"}).at(1)]
    assert [v.rule for v in check_session("s", events)] == ["starts with session.created"]


REUSE = Event("model.response", {"content": [{**USE, "input": {"command": "touch b"}}]})


def test_an_id_reused_by_a_later_response_may_be_refused_but_not_called_again():
    refused = [*GOOD[:3], REUSE, Event("tool.result", {"tool_use_id": "t1", "output": "already used", "is_error": True}), *GOOD[3:]]
    assert check_session("s", log(*refused)) == []
    ran_again = [*GOOD[:3], REUSE, GOOD[1], GOOD[2], *GOOD[3:]]
    assert [(v.rule, v.position) for v in check_session("s", log(*ran_again))] == [("one tool.call per tool use", 6)]


@pytest.mark.parametrize("event, why", [
    (Event("model.response", {"content": None}), "model.response content must be a list of content blocks, got null"),
    (Event("model.response", {"content": "hi"}), "model.response content must be a list of content blocks, got str 'hi'"),
    (Event("model.response", {"content": {"type": "text"}}), "model.response content must be a list of content blocks, got dict"),
    (Event("model.response", {"content": [{**USE, "id": ["t1"]}]}), "content block 0 (tool_use) id must be a non-empty string, got list"),
    (Event("tool.call", {"name": "bash"}), "tool.call tool_use_id is missing"),
    (Event("tool.result", {"tool_use_id": {"a": 1}}), "tool.result tool_use_id must be a non-empty string, got dict"),
])
def test_a_malformed_event_is_reported_where_it_is_and_the_other_rules_skip_it(event, why):
    found = check_session("s", log(*GOOD[:4], event, GOOD[4]))
    assert [(v.rule, v.position, v.detail) for v in found] == [("well-formed events", 6, why)]
