"""Sessions driven by workers on several machines that share one store (PostgreSQL): checked where they ran,
collected from anywhere.

A session's hands live on the machine whose worker drove it, so that worker checks it: started with
`--check`, a worker runs the task's check in the session's own sandbox as soon as the session ends and
logs the verdict as `task.checked`. `harnesslab collect` then writes one results.duckdb for every session in
the store, from the logs alone, on any machine.
"""
from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from experiments.runner import SessionRecord, check
from experiments.tasks.base import Task, Verdict
from harnesses.base import Outcome
from harnesses.hands import first_hand, live_sandbox_id
from sandboxes.base import SandboxProvider, Setup
from stores.base import Conflict, Event, SessionStore

CHECKED = "task.checked"


def outcome_of(session_id: str, events: list[Event]) -> Outcome:
    """What the log says the session ended with (status `active` if it has not)."""
    last = next((e for e in reversed(events) if e.type in ("session.completed", "session.failed")), None)
    if last is None:
        return Outcome(session_id, "active", "the session never ended")
    return Outcome(session_id, last.type.removeprefix("session."), last.data.get("reason", ""),
                   last.data.get("final_text", ""), live_sandbox_id(events, first_hand(events)))


def logged_verdict(events: list[Event]) -> Verdict | None:
    checked = [e for e in events if e.type == CHECKED]
    return Verdict(bool(checked[-1].data.get("success")), checked[-1].data.get("detail", "")) if checked else None


class Checker:
    """Checks a session its worker has just ended, in that session's sandbox, and logs the verdict."""

    def __init__(self, store: SessionStore, sandboxes: SandboxProvider, tasks: list[tuple[str, int, Task]], slot: str):
        self.store, self.sandboxes, self.slot = store, sandboxes, slot
        self.tasks = {(suite, instance, task.name): task for suite, instance, task in tasks}

    async def __call__(self, session_id: str) -> None:
        events = await self.store.events(session_id)
        outcome = outcome_of(session_id, events)
        if outcome.status == "active" or logged_verdict(events) is not None:
            return
        meta = events[0].data
        task = self.tasks.get((meta.get("suite"), meta.get("instance"), meta.get("task")))
        if task is None:
            verdict = Verdict(False, f"not checked: task {meta.get('suite')}/{meta.get('task')}#{meta.get('instance')} "
                                     "is not in this worker's tasks config")
        else:
            verdict = await check(task, outcome, self.sandboxes, Setup.from_meta(meta.get("setup")))
        data = {"success": verdict.success, "detail": verdict.detail, "worker": self.slot, "host": socket.gethostname()}
        try:
            await self.store.append(session_id, [Event(CHECKED, data)], expect=len(events))
        except Conflict:
            pass  # another worker checked it first


async def records_from_store(store: SessionStore) -> tuple[list[SessionRecord], dict[str, list[Event]]]:
    records, logs = [], {}
    for info in await store.sessions():
        events = logs[info.id] = await store.events(info.id)
        verdict = logged_verdict(events) or Verdict(False, "not checked (start the workers with --check)")
        records.append(SessionRecord(info.id, info.meta.get("suite", ""), info.meta.get("instance", 0),
                                     info.meta.get("task", ""), outcome_of(info.id, events), verdict,
                                     (events[-1].ts - events[0].ts) * 1000))
    return records, logs


def collect_job(cfg: DictConfig, output_dir: Path, choices: dict[str, Any]) -> Path:
    """`harnesslab collect`: results.duckdb of every session in the configured store."""
    from hydra.utils import instantiate

    from experiments.job import print_run, save_run, utc_now

    started = utc_now()

    async def read() -> tuple[list[SessionRecord], dict[str, list[Event]]]:
        store = instantiate(cfg.store)
        try:
            return await records_from_store(store)
        finally:
            await store.close()

    records, logs = asyncio.run(read())
    saved = save_run(cfg, output_dir, choices, started, records, logs)
    print_run(saved, f"harnesslab collect · store={choices.get('store', '?')}: {len(records)} session(s)")
    return saved.path
