"""Sessions driven by workers on several machines that share one store (PostgreSQL): checked where they ran,
collected from anywhere.

A session's hands live on the machine whose worker drove it, so that worker checks it: started with
`--check`, a worker runs the task's check in the session's own sandbox as soon as the session ends and
logs the verdict as `task.checked`. `harnesslab collect` then writes one results.duckdb for every session in
the store, from the logs, on any machine; a session no worker checked it checks itself where it can (its
sandbox is reachable from there, e.g. the same machine and sandbox.root), and logs that verdict too.
"""
from __future__ import annotations

import asyncio
import socket
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.results.save import print_run, save_run, utc_now
from experiments.run.config_check import ConfigError
from experiments.run.parts import build, recorded_choices
from experiments.run.runner import SessionRecord, check, close_on_exit
from experiments.tasks.base import Task, Verdict
from harnesses.base import Outcome
from harnesses.hands import first_hand, live_sandbox_id
from sandboxes.base import SandboxError, SandboxProvider, Setup
from stores.base import TERMINAL_TYPES, Conflict, Event, SessionInfo, SessionStore
from stores.events import SessionCreated, TaskChecked, typed


def outcome_of(session_id: str, events: list[Event]) -> Outcome:
    """What the log says the session ended with (status `active` if it has not)."""
    last = next((e for e in reversed(events) if e.type in TERMINAL_TYPES), None)
    if last is None:
        return Outcome(session_id, "active", "the session never ended")
    end = typed(last)
    return Outcome(session_id, end.STATUS, end.reason, end.final_text or "", live_sandbox_id(events, first_hand(events)))


def logged_verdict(events: list[Event]) -> Verdict | None:
    checked = TaskChecked.all_in(events)
    return Verdict(bool(checked[-1].success), checked[-1].detail) if checked else None


class Checker:
    """Checks an ended session in its sandbox and logs the verdict (`task.checked`): a worker checks each
    session it has just ended; `collect`, each one that no worker checked."""

    def __init__(self, store: SessionStore, sandboxes: SandboxProvider, tasks: list[tuple[str, int, Task]], slot: str):
        self.store, self.sandboxes, self.slot = store, sandboxes, slot
        self.tasks = {(suite, instance, task.name): task for suite, instance, task in tasks}
        self.logged = self.not_checked = 0

    async def __call__(self, session_id: str) -> None:
        await self.check(session_id, await self.store.events(session_id))

    async def check(self, session_id: str, events: list[Event]) -> Verdict:
        """The session's verdict, logged unless it was already or cannot be had here ("not checked: why")."""
        outcome, logged = outcome_of(session_id, events), logged_verdict(events)
        if logged is not None:
            return logged
        if outcome.status == "active":
            return Verdict(False, "not checked: the session has not ended")
        meta = SessionCreated.read(events[0]).meta
        task, why = self._task(meta)
        if task is None:
            self.not_checked += 1
            return Verdict(False, f"not checked: {why}")
        sandboxes = _Reaching(self.sandboxes)
        verdict = await check(task, outcome, sandboxes, Setup.from_meta(meta.get("setup")))
        if sandboxes.failed is not None:  # its hands are on another machine, or gone: no verdict to log
            self.not_checked += 1
            return Verdict(False, f"not checked: no sandbox to check it in here ({sandboxes.failed}); {HOW_TO_CHECK}")
        checked = TaskChecked(verdict.success, verdict.detail, self.slot, socket.gethostname())
        try:
            await self.store.append(session_id, [checked.event()], expect=len(events))
            self.logged += 1
        except Conflict:
            pass  # another worker checked it first
        return verdict

    def _task(self, meta: dict[str, Any]) -> tuple[Task | None, str]:
        """The task a session ran, if this config builds it as the session recorded it."""
        name = f"{meta.get('suite')}/{meta.get('task')}#{meta.get('instance')}"
        task = self.tasks.get((meta.get("suite"), meta.get("instance"), meta.get("task")))
        if task is None:
            return None, f"task {name} is not in the tasks config here; give it the `tasks` overrides of `submit`"
        rebuilt = task.meta(meta.get("suite"), meta.get("instance"))
        if rebuilt != {key: meta.get(key) for key in rebuilt}:
            return None, f"task {name} is built otherwise by the tasks config here; give it the `tasks` overrides of `submit`"
        return task, ""


HOW_TO_CHECK = ("run collect where its hands are, with the workers' sandbox options (e.g. sandbox.root=...), "
                "or start the workers with --check")


class _Reaching:
    """A sandbox provider that remembers why a check could not have a sandbox (the session's own, on another
    machine or gone; or a fresh one), if it could not."""

    def __init__(self, provider: SandboxProvider):
        self.provider, self.failed = provider, None

    async def provision(self) -> Any:
        return await self._noted(self.provider.provision())

    async def attach(self, sandbox_id: str) -> Any:
        return await self._noted(self.provider.attach(sandbox_id))

    async def _noted(self, getting: Any) -> Any:
        try:
            return await getting
        except SandboxError as exc:
            self.failed = exc
            raise


def tasks_of(tasks_cfg: DictConfig, metas: list[dict[str, Any]]) -> list[tuple[str, int, Task]]:
    """The tasks a store's sessions ran, built from `tasks_cfg` for each suite they name, with as many instances
    as they reach: `collect` finds a session of `tasks.repeat=5` without that override."""
    reach: dict[str, int] = {}
    for meta in metas:
        if isinstance(meta.get("suite"), str) and isinstance(meta.get("instance"), int):
            reach[meta["suite"]] = max(reach.get(meta["suite"], 0), meta["instance"] + 1)
    tasks = []
    for suite, instances in reach.items():
        widened = {key: value for key, value in (("name", suite), ("repeat", max(tasks_cfg.get("repeat", 1), instances)))
                   if key in tasks_cfg}
        try:
            tasks += build(OmegaConf.create({"tasks": OmegaConf.merge(tasks_cfg, widened)}), "tasks")
        except ConfigError:
            continue  # not a suite this config builds: its sessions say so, as not checked
    return tasks


async def records_from_store(store: SessionStore, infos: list[SessionInfo], checker: Checker
                             ) -> tuple[list[SessionRecord], dict[str, list[Event]]]:
    """A record of each session; `checker` checks those no worker checked (and logs its verdicts)."""
    records, logs = [], {}
    for info in infos:
        events = await store.events(info.id)
        verdict = logged_verdict(events)
        if verdict is None:
            verdict = await checker.check(info.id, events)
            events = await store.events(info.id)  # with the verdict it logged
        logs[info.id] = events
        records.append(SessionRecord(info.id, info.meta.get("suite", ""), info.meta.get("instance", 0),
                                     info.meta.get("task", ""), outcome_of(info.id, events), verdict,
                                     (events[-1].ts - events[0].ts) * 1000))
    return records, logs


def collect_job(cfg: DictConfig, output_dir: Path, choices: dict[str, Any], groups: tuple[str, ...] = ("store",)) -> Path:
    """`harnesslab collect`: results.duckdb of every session in the configured store, each checked (here, in
    its sandbox, if no worker did). `groups`: the parts this collect knows of, recorded under their names."""
    choices = recorded_choices(cfg, choices, groups)
    started = utc_now()
    records, logs, checker = asyncio.run(_read_and_check(cfg))
    saved = save_run(cfg, output_dir, choices, started, records, logs)
    chosen = " ".join(f"{group}={choices[group]}" for group in groups)
    checked = (f"checked here: {checker.logged} session(s) no worker had checked"
               + (f"; {checker.not_checked} could not be (see their check_detail)" if checker.not_checked else ""))
    print_run(saved, f"harnesslab collect · {chosen}: {len(records)} session(s)", checked)
    return saved.path


async def _read_and_check(cfg: DictConfig) -> tuple[list[SessionRecord], dict[str, list[Event]], Checker]:
    async with AsyncExitStack() as stack:
        store = close_on_exit(stack, build(cfg, "store"))
        sandboxes = close_on_exit(stack, build(cfg, "sandbox"))
        infos = await store.sessions()
        checker = Checker(store, sandboxes, tasks_of(cfg.tasks, [info.meta for info in infos]), "collect")
        records, logs = await records_from_store(store, infos, checker)
    return records, logs, checker

