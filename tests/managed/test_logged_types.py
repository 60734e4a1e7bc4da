"""The event types the served API writes, in the log's one schema (stores/events.py): each reads back as written,
slice 1's logs read as they were written, and a session update says whether it changed the title."""
from __future__ import annotations

import pytest

from stores import events as logged
from stores.base import Event

EXAMPLES = [
    logged.AgentVersion({"name": "a", "system": "be brief", "tools": []}),
    logged.SessionUpdated({"team": "lab", "old": None}, "a title", retitled=True),
    logged.SessionUpdated({"team": "lab"}),
    logged.SessionDeleted(),
    logged.WorkerResult("toolu_1", "all tests passed", False),
    logged.WorkQueued("work_1", "sesn_1"),
    logged.WorkPolled("work_1", "host-1", "its lease expired"),
    logged.WorkAcked("work_1", 300),
    logged.WorkHeartbeat("work_1", "2026-12-04T23:00:00.000000Z", 300),
    logged.WorkStopped("work_1", force=True),
    logged.WorkUpdated("work_1", {"k": "v"}),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.TYPE)
def test_each_type_reads_back_as_written(example):
    event = example.event()
    assert logged.TYPES[example.TYPE] is type(example)
    assert logged.typed(event) == type(example).read(event) == example


def test_slice_one_logs_read_as_they_were_written():
    version = Event(logged.AgentVersion.TYPE, {"name": "a", "model": {"id": "m"}})  # the definition is the data
    assert logged.AgentVersion.read(version).definition == {"name": "a", "model": {"id": "m"}}
    renamed = Event(logged.SessionUpdated.TYPE, {"metadata": {}, "title": None})  # a title cleared
    assert logged.SessionUpdated.read(renamed) == logged.SessionUpdated({}, None, retitled=True)
    kept = Event(logged.SessionUpdated.TYPE, {"metadata": {"a": "b"}})
    assert logged.SessionUpdated.read(kept).retitled is False and "title" not in logged.SessionUpdated({}).event().data
    assert "reclaimed" not in logged.WorkPolled("work_1").event().data  # optional, left out when not set
