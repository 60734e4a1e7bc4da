"""`harnesslab recovery`: kill workers for real (SIGKILL) at random points, then verify everything.

Sessions are submitted to a shared SQLite store, `workers` supervised worker processes drive them,
and `kills` random live workers are SIGKILLed (seeded timing). Afterwards: every session must have
completed and passed its task's check, every log must keep the invariants, and for each kill the
time until the killed slot's successor woke on a session it had held is measured (from the
successor becoming ready, and from the kill itself). Results go to results.duckdb (`faults`,
`violations`, the session logs in `events`).
"""
from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from experiments.invariants import Violation, check_session, violation_rows
from experiments.results import SCHEMA
from experiments.runner import check
from harnesses.base import Outcome
from harnesses.hands import live_sandbox_id
from experiments.supervisor import Supervisor
from sandboxes.base import Setup
from sandboxes.journal import starts
from sandboxes.local import LocalSandboxProvider
from sandboxes.tools import TOOLS
from stores.archive import export_sessions, write_table
from stores.sqlite import SqliteStore

FAULTS = ("harness_kill", "sandbox_kill")
FAULTS_TABLE = {"run_id": "VARCHAR", "kind": "VARCHAR", "target": "VARCHAR", "at": "DOUBLE",
                "recovered_after_ms": "DOUBLE", "since_ready_ms": "DOUBLE", "sessions_held": "INTEGER"}


@dataclass
class Recovery:
    sessions: int = 0
    completed: int = 0
    succeeded: int = 0
    kills: list[dict] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failed_checks: dict[str, str] = field(default_factory=dict)  # session id -> why its check failed
    duplicate_effects: int = 0  # non-idempotent tool calls that started more than once (journal)
    unnoticed: set[str] = field(default_factory=set)  # sessions that ended before noticing their hands were killed
    reruns: int = 0  # idempotent tool calls started again after a crash (allowed)

    def summary(self) -> str:
        def spread(key: str) -> str:
            values = [k[key] for k in self.kills if k[key] is not None]
            return f"p50 {statistics.median(values):.0f} ms, p95 {sorted(values)[int(0.95 * (len(values) - 1))]:.0f} ms" if values else "n/a"

        kinds = sorted({k["kind"] for k in self.kills}) or ["none"]
        return "\n".join([
            f"faults: {len(self.kills)} ({', '.join(kinds)}; sandbox kills counted once their session noticed)",
            f"sessions: {self.completed}/{self.sessions} completed, {self.succeeded}/{self.sessions} passed their check, "
            f"{self.sessions - self.completed} lost; {len(self.unnoticed)} finished before noticing their hands were gone "
            "(what they left in the sandbox went with it)",
            f"invariants: {len(self.violations)} violation(s)",
            f"side-effect journal: {self.duplicate_effects} duplicate start(s) of non-idempotent tools, "
            f"{self.reruns} re-run(s) of idempotent ones (allowed)",
            f"takeover after the successor was ready: {spread('since_ready_ms')} (target: within 500 ms)",
            f"from the fault to recovery (next event, or new hands): {spread('recovered_after_ms')}",
            *[f"  {failure}" for failure in self.failures[:10]],
        ])


async def inject_faults(folder: Path, kills: int, workers: int, overrides: list[str], seed: int = 0,
                       fault: str = "harness_kill") -> Recovery:
    """Run the sessions under `fault`: "harness_kill" SIGKILLs a random live worker, "sandbox_kill"
    removes the live workspace of a random active session (its hands die mid-session)."""
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r}; valid: {', '.join(FAULTS)}")
    store_path, hands = folder / "lab.sqlite", folder / "hands"
    # workers leave the hands of finished sessions in place: the check below looks into them
    shared = [f"store.path={store_path}", f"sandbox.root={hands}", "sandbox.keep=true",
              f"sandbox.journal={folder / 'journal.jsonl'}", *overrides]
    await _submit(folder, shared)
    supervisor = Supervisor(lambda slot: [sys.executable, "-m", "experiments.cli", "worker", "--slot", slot, *shared], workers)
    rng, sandbox_kills = random.Random(seed), []
    await supervisor.start()
    try:
        while len(supervisor.kills) + len(sandbox_kills) < kills and not all(s.done for s in supervisor.slots.values()):
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            if fault == "harness_kill":
                supervisor.kill_one(rng, min_ready_s=0.2)
            elif (killed := await _kill_a_sandbox(store_path, hands, rng)) is not None:
                sandbox_kills.append(killed)
        await supervisor.wait(timeout=600)
    finally:
        await supervisor.stop()
    found = await _verify(store_path, hands, supervisor, overrides, sandbox_kills)
    for (_, tool), count in starts(folder / "journal.jsonl").items():
        if count > 1:
            found.reruns += count - 1 if TOOLS[tool].idempotent else 0
            found.duplicate_effects += count - 1 if not TOOLS[tool].idempotent else 0
    return found


async def _kill_a_sandbox(store_path: Path, hands: Path, rng: random.Random) -> dict | None:
    """Remove the live workspace of a random active session; returns what was killed."""
    store = SqliteStore(store_path)
    try:
        live = []
        for info in await store.sessions(status="active"):
            sandbox_id = live_sandbox_id(await store.events(info.id))
            if sandbox_id and (hands / sandbox_id).is_dir():
                live.append((info.id, sandbox_id))
    finally:
        await store.close()
    if not live:
        return None
    session_id, sandbox_id = rng.choice(live)
    await asyncio.to_thread(shutil.rmtree, hands / sandbox_id, ignore_errors=True)
    return {"session_id": session_id, "sandbox_id": sandbox_id, "at": time.time()}


async def _submit(folder: Path, shared: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "experiments.cli", "submit", *shared, cwd=folder)
    if await process.wait() != 0:
        raise RuntimeError("harnesslab submit failed")


async def _verify(store_path: Path, hands: Path, supervisor: Supervisor, overrides: list[str],
                  sandbox_kills: list[dict]) -> Recovery:
    from hydra.utils import instantiate

    from experiments.job import compose_config

    cfg = compose_config([f"store.path={store_path}", *overrides])
    tasks = {(t.name, i): t for _, i, t in instantiate(cfg.tasks)}
    store, provider, found = SqliteStore(store_path), LocalSandboxProvider(root=str(hands)), Recovery()
    logs: dict[str, list] = {}
    held: dict[int, list[float]] = {i: [] for i in range(len(supervisor.kills))}
    try:
        for info in await store.sessions():
            events = await store.events(info.id)
            found.sessions += 1
            found.completed += info.status == "completed"
            found.violations += check_session(info.id, events)
            meta = events[0].data
            verdict = await check(tasks[meta["task"], meta["instance"]], _outcome(info.id, events), provider,
                                  Setup.from_meta(meta["setup"]))
            found.succeeded += verdict.success
            if not verdict.success:
                found.failures.append(f"{meta['task']}#{meta['instance']}: {verdict.detail}")
                found.failed_checks[info.id] = verdict.detail
            logs[info.id] = events
            woke = [(e.data.get("worker"), e.ts) for e in events if e.type == "harness.woke"]
            for i, kill in enumerate(supervisor.kills):
                if any(slot == kill.slot and ts < kill.at for slot, ts in woke):
                    after = [ts for slot, ts in woke if slot == kill.slot and ts > kill.at]
                    if after:
                        held[i].append(min(after))
    finally:
        await store.close()
        await provider.close()
    for kill in sandbox_kills:
        found.kills.append(_sandbox_kill_row(kill, logs[kill["session_id"]]))
        if not found.kills[-1]["noticed"]:
            found.unnoticed.add(kill["session_id"])
    for i, kill in enumerate(supervisor.kills):
        ready = min((t for slot, t in supervisor.readies if slot == kill.slot and t > kill.at), default=None)
        first = min(held[i], default=None)
        found.kills.append({
            "kind": "harness_kill", "target": kill.slot, "at": kill.at, "sessions_held": len(held[i]),
            "recovered_after_ms": (first - kill.at) * 1000 if first else None,
            "since_ready_ms": (first - ready) * 1000 if first and ready and first >= ready else None,
        })
    return found


def _sandbox_kill_row(kill: dict, events: list) -> dict:
    """Did the session notice its hands were gone (new hands, or it failed), and how soon did it get new ones?"""
    after = [e for e in events if e.ts > kill["at"]]
    replaced = next((e.ts for e in after if e.type == "sandbox.provisioned"), None)
    noticed = any(e.type in ("sandbox.lost", "session.failed", "sandbox.provisioned") for e in after)
    return {"kind": "sandbox_kill", "target": kill["sandbox_id"], "at": kill["at"], "sessions_held": 1, "noticed": noticed,
            "recovered_after_ms": (replaced - kill["at"]) * 1000 if replaced else None, "since_ready_ms": None}


def _outcome(session_id: str, events: list) -> Outcome:
    """What the log says the session ended with, for the task's check."""
    last = next((e for e in reversed(events) if e.type in ("session.completed", "session.failed")), None)
    if last is None:
        return Outcome(session_id, "active", "the session never ended")
    return Outcome(session_id, last.type.removeprefix("session."), last.data.get("reason", ""),
                   last.data.get("final_text", ""), live_sandbox_id(events))


async def write(folder: Path, recovery: Recovery) -> Path:
    path, run_id = folder / "results.duckdb", f"recovery-{int(time.time())}"
    write_table(path, "faults", FAULTS_TABLE, [{**{c: k.get(c) for c in FAULTS_TABLE}, "run_id": run_id} for k in recovery.kills])
    write_table(path, "violations", SCHEMA["violations"], [{**v, "run_id": run_id} for v in violation_rows(recovery.violations)])
    store = SqliteStore(folder / "lab.sqlite")
    try:
        await export_sessions(store, path, run_id)
    finally:
        await store.close()
    return path
