"""Workers killed for real (SIGKILL) at random points: every session still completes, the logs keep
every invariant, and a restarted worker takes its slot's sessions over at once."""
from __future__ import annotations

import asyncio
import random
import statistics
import sys

import pytest

from experiments.invariants import check_session
from experiments.runner import check
from experiments.supervisor import Supervisor
from experiments.tasks import load_suite
from sandboxes.base import Setup
from sandboxes.local import LocalSandboxProvider
from stores.sqlite import SqliteStore
from tests.experiments.test_cli import harnesslab


@pytest.mark.slow
async def test_random_worker_kills_lose_nothing(tmp_path):
    store_path, hands = tmp_path / "lab.sqlite", tmp_path / "hands"
    overrides = [f"store.path={store_path}", f"sandbox.root={hands}", "model=scripted", "model.ttft_ms=60",
                 "model.ms_per_output_token=1", "tasks.repeat=4", "run.concurrency=10"]
    assert harnesslab("submit", *overrides, cwd=tmp_path).returncode == 0
    supervisor = Supervisor(lambda slot: [sys.executable, "-m", "experiments.cli", "worker", "--slot", slot, *overrides], slots=2)
    rng, wanted = random.Random(8), 8
    await supervisor.start()
    try:
        while len(supervisor.kills) < wanted and not all(s.done for s in supervisor.slots.values()):
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            supervisor.kill_one(rng, min_ready_s=0.2)
        await supervisor.wait(timeout=180)
    finally:
        await supervisor.stop()
    assert len(supervisor.kills) == wanted

    store = SqliteStore(store_path)
    provider = LocalSandboxProvider(root=str(hands))
    tasks = {(task.name, instance): task for _, instance, task in load_suite("smoke", repeat=4)}
    try:
        sessions = await store.sessions()
        assert len(sessions) == 40 and {s.status for s in sessions} == {"completed"}
        takeovers = []
        for info in sessions:
            events = await store.events(info.id)
            assert check_session(info.id, events) == []
            task = tasks[events[0].data["task"], events[0].data["instance"]]
            sandbox_id = next((e.data["sandbox_id"] for e in reversed(events) if e.type == "sandbox.provisioned"), None)
            final = next(e.data.get("final_text", "") for e in reversed(events) if e.type == "session.completed")
            outcome = type("Outcome", (), {"status": "completed", "reason": "", "final_text": final, "sandbox_id": sandbox_id})
            verdict = await check(task, outcome, provider, Setup.from_meta(events[0].data["setup"]))
            assert verdict.success, (task.name, verdict.detail)
            woke = [(e.data["worker"], e.ts) for e in events if e.type == "harness.woke"]
            for kill in supervisor.kills:  # the first wake by the killed slot's successor on a session it held
                later = [ts for slot, ts in woke if slot == kill.slot and ts > kill.at]
                held = any(slot == kill.slot and ts < kill.at for slot, ts in woke)
                ready = min((t for slot, t in supervisor.readies if slot == kill.slot and t > kill.at), default=None)
                if later and held and ready is not None and min(later) >= ready:
                    takeovers.append((min(later) - ready) * 1000)
    finally:
        await store.close()
        await provider.close()
    assert takeovers, "no killed worker held a session that its successor took over"
    print(f"\n{wanted} kills; takeover after the new worker was ready: p50 {statistics.median(takeovers):.0f} ms, "
          f"max {max(takeovers):.0f} ms over {len(takeovers)} session(s)")
    assert statistics.median(takeovers) < 2000  # generous: the target (500 ms) is for the benchmark to report
