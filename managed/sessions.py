"""Sessions: one session log each. Its `session.created` meta holds what the harness reads (system, tools, setup)
and what the API returns (a snapshot of the agent version it runs, its environment, metadata, title); its status,
usage and times are read from the log itself, never kept anywhere else.

`task_meta` bridges to harnesslab's task suites: a session whose metadata names `harnesslab_task` (a smoke task,
say) gets that task's workspace setup, so the emulated brain can solve it through the API (on a cloud environment:
a self-hosted one's workspace is its worker's folder).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from harnesses.steps import ended
from managed import agents, errors, ids
from managed.errors import conflict, invalid, not_served
from managed.events import ENVIRONMENT_TYPE, waits_for_worker
from managed.records import Records, listing, page
from stores.base import Event
from stores.events import ModelResponse, SessionDeleted, SessionUpdated, UserMessage

TaskMeta = Callable[[str], Mapping[str, Any]]  # a task's name -> its meta (task, suite, setup, ...); LookupError if unknown
TASK_KEY = "harnesslab_task"
FIELDS = {"agent", "environment_id", "metadata", "title", "initial_events", "vault_ids", "resources", "budget"}
NOT_YET = {"vault_ids": "vaults and credentials", "resources": "session resources (files, repositories, memory stores)",
           "budget": "budgets"}
USAGE = ("input_tokens", "output_tokens", "cache_read_input_tokens")


async def create(records: Records, body: Any, initial: Sequence[Event], task_meta: TaskMeta | None) -> dict[str, Any]:
    """A new session; `initial` are the log events of its initial_events (read by managed/events.py)."""
    body = errors.body_object(body)
    errors.known_fields(body, FIELDS)
    for name, what in NOT_YET.items():
        if body.get(name):
            raise not_served(name, f"{what} come in a later slice")
    agent = await _agent(records, body.get("agent"))
    environment_id = errors.text(body, "environment_id", required=True)
    kind = (await records.log("environment", environment_id))[0].data["environment"]["config"]["type"]
    metadata = errors.patched({}, errors.metadata(body.get("metadata")))
    if kind == "self_hosted" and TASK_KEY in metadata:
        raise invalid(f"metadata.{TASK_KEY}: environment {environment_id} is self-hosted: its workspace is its worker's "
                      "folder, which harnesslab cannot prepare; put the task's files there and send its prompt")
    meta = {
        "agent": agent, "environment_id": environment_id, ENVIRONMENT_TYPE: kind, "metadata": metadata,
        "title": errors.text(body, "title"), "system": agent["system"] or "", "tools": agents.enabled_tools(agent),
        "setup": {"files": {}, "commands": []}, **_task(metadata.get(TASK_KEY), task_meta),
    }
    session_id = ids.new_id(ids.SESSION)
    await records.create("session", session_id, meta)
    if initial:
        await records.store.append(session_id, list(initial), expect=1)
    return await retrieve(records, session_id)


async def retrieve(records: Records, session_id: str) -> dict[str, Any]:
    return session_object(session_id, await records.log("session", session_id))


async def update(records: Records, session_id: str, body: Any) -> dict[str, Any]:
    body = errors.body_object(body)
    errors.known_fields(body, {"metadata", "title", "agent", "budget", "vault_ids"})
    for name in ("agent", "budget", "vault_ids"):
        if name in body:
            raise not_served(name, "a session's agent, budget and vaults cannot be changed here yet")
    change = SessionUpdated(errors.metadata(body.get("metadata"), patch=True), errors.text(body, "title"), "title" in body)
    log = await _idle_log(records, session_id, "updated")
    await records.store.append(session_id, [change.event()], expect=len(log))
    return await retrieve(records, session_id)


async def delete(records: Records, session_id: str) -> dict[str, Any]:
    log = await _idle_log(records, session_id, "deleted")
    await records.store.append(session_id, [SessionDeleted().event()], expect=len(log))
    return {"type": "session_deleted", "id": session_id}


async def sessions(records: Records, query: Mapping[str, str], statuses: Sequence[str]) -> dict[str, Any]:
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid(f"order: expected 'asc' or 'desc', got {order!r}")
    wanted_agent, wanted_version = query.get("agent_id"), query.get("agent_version")
    found = []
    for info in await records.infos("session"):
        events = await records.store.events(info.id)
        if events[-1].type == SessionDeleted.TYPE:
            continue
        session = session_object(info.id, events)
        if ((not statuses or session["status"] in statuses) and wanted_agent in (None, session["agent"]["id"])
                and wanted_version in (None, str(session["agent"]["version"]))):
            found.append(session)
    found = found if order == "desc" else found[::-1]
    chosen, next_page = page(found, lambda session: session["id"], query.get("page"), errors.limit(query))
    return listing(chosen, next_page)


def status(events: Sequence[Event]) -> str:
    """running while a user turn is open (a user message after the last end), unless it waits for its self-hosted
    worker's tool results; else idle."""
    return "running" if turn_open(events) and not waits_for_worker(events) else "idle"


def turn_open(events: Sequence[Event]) -> bool:
    return ended(events) is None and any(e.type == UserMessage.TYPE for e in events)


def session_object(session_id: str, events: Sequence[Event]) -> dict[str, Any]:
    meta = events[0].data
    metadata, title = meta["metadata"], meta.get("title")
    for change in SessionUpdated.all_in(events):
        metadata = errors.patched(metadata, change.metadata)
        title = change.title if change.retitled else title
    usage = {key: 0 for key in (*USAGE, "cache_creation_input_tokens")}
    for response in ModelResponse.all_in(events):
        for key in usage:
            usage[key] += int((response.usage or {}).get(key) or 0)
    return {
        "type": "session", "id": session_id, "status": status(events), "agent": meta["agent"],
        "environment_id": meta["environment_id"], "metadata": metadata, "title": title,
        "created_at": ids.timestamp(events[0].ts), "updated_at": ids.timestamp(events[-1].ts), "archived_at": None,
        "usage": {key: usage[key] for key in USAGE}, "stats": {"duration_seconds": events[-1].ts - events[0].ts},
        "resources": [], "vault_ids": [], "outcome_evaluations": [], "budget": None,
        "harnesslab": {"log_length": len(events), "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                       **({"task": meta["task"]} if meta.get("task") else {})},
    }


async def _agent(records: Records, value: Any) -> dict[str, Any]:
    """The agent version a session runs, as the API shows it."""
    if isinstance(value, str) and value:
        return _snapshot(await agents.retrieve(records, value))
    if isinstance(value, dict) and value.get("type") == "agent" and isinstance(value.get("id"), str):
        errors.known_fields(value, {"type", "id", "version"}, "agent.")
        version = value.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise invalid(f"agent.version: expected a whole number >= 1, got {version!r}")
        return _snapshot(await agents.retrieve(records, value["id"], None if version is None else str(version)))
    if isinstance(value, dict) and value.get("type") == "agent_with_overrides":
        raise not_served("agent overrides", "a session runs an agent version as it is")
    raise invalid("agent: expected an agent id, or {\"type\": \"agent\", \"id\": ..., \"version\": ...}")


def _snapshot(agent: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in agent.items() if key not in ("created_at", "updated_at", "archived_at", "metadata")}


def _task(name: str | None, task_meta: TaskMeta | None) -> dict[str, Any]:
    if name is None:
        return {}
    if task_meta is None:
        raise invalid(f"metadata.{TASK_KEY}: this server was started without harnesslab's task suites")
    try:
        meta = task_meta(name)
    except LookupError as exc:
        raise invalid(f"metadata.{TASK_KEY}: {exc.args[0] if exc.args else exc}") from None
    return {key: meta[key] for key in ("task", "suite", "instance", "setup") if key in meta}


async def _idle_log(records: Records, session_id: str, verb: str) -> list[Event]:
    log = await records.log("session", session_id)
    if turn_open(log):  # idle waiting for a worker's results too: the brain waits on the log
        why = "waits for its worker's tool results" if waits_for_worker(log) else "is running"
        raise conflict(f"session {session_id} {why}: it can be {verb} once its turn ended")
    return log
