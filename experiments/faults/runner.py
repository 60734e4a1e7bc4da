"""Runs under faults: supervised worker processes drive the sessions while faults are injected for real.

`harnesslab run faults=...` (or `run.workers=N`) comes here instead of running sessions in-process.
The sessions go into a store the workers share (SQLite in the job folder, or a PostgreSQL cluster of
its own, which `store_restart` can restart), workers start from one resolved config, the faults act,
and afterwards everything is verified: each session's status and task check, the log invariants,
acknowledged events against the store, and the side-effect journal for tools that ran twice.
"""
from __future__ import annotations

import asyncio
import json
import random
import sys
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.faults.acks import AckedStore, lost_events
from experiments.workers.collect import outcome_of
from experiments.run.config_check import ConfigError, locate
from experiments.faults.lab import JOURNAL, Lab
from experiments.faults.kinds import Fault, HarnessKill, faults_from_config, incarnation_seed
from experiments.faults.findings import Recovery, harness_kill_rows, sandbox_kill_rows, store_restart_rows
from experiments.run.runner import SessionRecord, check
from experiments.workers.supervisor import Supervisor
from sandboxes.base import NotShared as SandboxesNotShared
from sandboxes.base import Setup
from sandboxes.journal import starts
from sandboxes.tools import TOOLS
from stores.base import Event
from stores.events import SessionCreated, UserMessage
from stores.base import NotShared as StoreNotShared

DEFAULT_WORKERS = 2  # when faults are asked for without run.workers
WORKER_MODULES = ("experiments.cli.main", "experiments.workers.worker", "experiments.run.parts")  # with the parts' own modules
# what parts import only as they start (the SDK takes 1.2 s, most of a worker's start): imported by the fork server
# whichever parts run (one that is not installed is skipped), which costs the server alone, once
LAZY_IMPORTS = ("anthropic", "httpcore2", "anyio._backends._asyncio", "psycopg", "psycopg_pool")


async def run_with_faults(cfg: DictConfig, folder: Path, cell: str = "") -> tuple[list[SessionRecord], dict[str, list[Event]], Recovery]:
    faults = faults_from_config(cfg.get("faults"))
    workers = cfg.run.get("workers") or DEFAULT_WORKERS
    async with _lab(cfg, folder, faults) as lab:
        tasks = await _submit(lab, instantiate(cfg.tasks))
        lab.supervisor = Supervisor(_worker_command(lab, faults, cfg.run.get("seed", 0)), workers, folder / "workers", lab.preload)
        injected = await _run_workers(lab, faults, cfg.run.get("seed", 0), cfg.run.get("timeout_s", 900))
        print(f"[{cell}] {len(tasks)} session(s) driven by {workers} worker process(es); verifying", file=sys.stderr, flush=True)
        return await _verify(lab, tasks, faults, injected, reruns_allowed=cfg.harness.get("interrupted") == "rerun")


def _worker_command(lab: Lab, faults: list[Fault], seed: int) -> Callable[[str, int], list[str]]:
    def command(slot: str, incarnation: int) -> list[str]:
        crashed = len([k for k in lab.supervisor.kills if not k.by_supervisor])  # crash points stop at their count
        flags = [flag for f in faults if not (isinstance(f, HarnessKill) and crashed >= f.count) for flag in f.worker_flags()]
        return [sys.executable, "-m", "experiments.cli", "worker", "--slot", slot, "--config", str(lab.folder / "worker.yaml"),
                "--acks", str(lab.acks), "--fault-log", str(lab.fault_log),
                "--fault-seed", str(incarnation_seed(seed, slot, incarnation)), *flags]

    return command


async def _run_workers(lab: Lab, faults: list[Fault], seed: int, timeout_s: float) -> list[dict[str, Any]]:
    """Until the workers run out of sessions, with the faults that act from outside; returns those injected."""
    injected: list[dict[str, Any]] = []
    stopping = asyncio.Event()
    await lab.supervisor.start()
    injecting = [asyncio.create_task(_keep_injecting(f, lab, random.Random(f"{seed}:{f.kind}"), injected, stopping))
                 for f in faults if f.acts]
    try:
        await lab.supervisor.wait(timeout=timeout_s)
    finally:
        stopping.set()  # a fault under way finishes first (a restarting store is back before anyone reads it)
        await asyncio.gather(*injecting, return_exceptions=True)
        await lab.supervisor.stop()
    failed = [t.exception() for t in injecting if t.exception() is not None]
    if failed:
        raise failed[0]
    return injected


async def _keep_injecting(fault: Fault, lab: Lab, rng: random.Random, injected: list[dict[str, Any]], stopping: asyncio.Event) -> None:
    done = 0
    while done < fault.count:
        try:
            await asyncio.wait_for(stopping.wait(), rng.uniform(*fault.interval_s))
            return
        except asyncio.TimeoutError:
            pass
        row = await fault.inject(lab, rng)
        if row is not None:
            injected.append(row)
            done += 1


@asynccontextmanager
async def _lab(cfg: DictConfig, folder: Path, faults: list[Fault]) -> AsyncIterator[Lab]:
    """The store the workers share and the sandboxes they leave each other, as those parts say they are shared
    (`for_workers`); the workers' config; the driver's own handles; cleanup."""
    workers_cfg = OmegaConf.to_container(cfg, resolve=True)
    for section in ("faults", "hydra"):
        workers_cfg.pop(section, None)
    async with AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(locate(workers_cfg["store"]["_target_"]).for_workers(workers_cfg["store"], folder))
            hands = await stack.enter_async_context(
                locate(workers_cfg["sandbox"]["_target_"]).for_workers(workers_cfg["sandbox"], folder / JOURNAL))
        except (StoreNotShared, SandboxesNotShared) as exc:
            raise ConfigError(str(exc)) from None
        workers_cfg["store"], workers_cfg["sandbox"] = store.options, hands.workers
        for fault in faults:
            fault.configure_workers(workers_cfg)
        OmegaConf.save(OmegaConf.create(workers_cfg), folder / "worker.yaml")
        lab = Lab(folder, instantiate(store.options), instantiate(hands.driver), store.server, preload=worker_imports(workers_cfg))
        stack.push_async_callback(lab.store.close)
        stack.push_async_callback(lab.sandboxes.close)
        await lab.sandboxes.start()  # docker's starts its reaper: the workers' containers go if the driver dies
        try:
            for fault in faults:
                fault.check(lab)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        yield lab


def worker_imports(workers_cfg: dict[str, Any]) -> tuple[str, ...]:
    """The modules a worker of this config imports before it is ready: the supervisor's fork server imports
    them once for every worker (experiments/workers/supervisor.py), instead of each new worker importing them again."""
    parts = [locate(target) for target in _targets(workers_cfg)]
    return tuple(dict.fromkeys([*WORKER_MODULES, *(part.__module__ for part in parts), *LAZY_IMPORTS]))


def _targets(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield node["_target_"]
        node = list(node.values())
    for item in node if isinstance(node, list) else ():
        yield from _targets(item)


async def _submit(lab: Lab, tasks: list) -> dict[str, tuple[str, int, Any]]:
    """Create every session (acknowledged creations recorded like the workers'); session id -> (suite, instance, task)."""
    store, submitted = AckedStore(lab.store, lab.acks), {}
    for suite, instance, task in tasks:
        session_id = await store.create_session(task.meta(suite, instance))
        await store.append(session_id, [UserMessage(task.prompt).event()], expect=1)
        submitted[session_id] = (suite, instance, task)
    return submitted


async def _verify(lab: Lab, tasks: dict[str, tuple[str, int, Any]], faults: list[Fault],
                  injected: list[dict[str, Any]], reruns_allowed: bool) -> tuple[list[SessionRecord], dict[str, list[Event]], Recovery]:
    records, logs = [], {}
    for session_id, (suite, instance, task) in tasks.items():
        events = logs[session_id] = await lab.store.events(session_id)
        outcome = outcome_of(session_id, events)
        verdict = await check(task, outcome, lab.sandboxes, Setup.from_meta(SessionCreated.read(events[0]).meta.get("setup")))
        records.append(SessionRecord(session_id, suite, instance, task.name, outcome, verdict, (events[-1].ts - events[0].ts) * 1000))
    found = Recovery(asked=[f.kind for f in faults], reruns_allowed=reruns_allowed)
    found.acked, found.lost = await lost_events(lab.store, lab.acks)
    if lab.fault_log.exists():
        injected = injected + [json.loads(line) for line in lab.fault_log.read_text().splitlines()]
    for (key, tool), count in starts(lab.journal).items():
        if count > 1 and TOOLS[tool].idempotent:
            found.reruns += count - 1
        elif count > 1:
            found.duplicates.append((key, tool, count))
    point = next((f.at for f in faults if isinstance(f, HarnessKill)), "random")
    found.rows += harness_kill_rows(lab.supervisor, logs, point)
    found.rows += sandbox_kill_rows([r for r in injected if r["kind"] == "sandbox_kill"], logs)
    found.rows += store_restart_rows([r for r in injected if r["kind"] == "store_restart"], logs)
    for fault in faults:
        found.rows += fault.rows_from_logs(logs)
    found.add_sessions(records)
    return records, logs, found
