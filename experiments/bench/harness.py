"""Harness overhead per turn: the wall time between model calls that is neither the model's nor the sandbox's
(a scripted model, local hands, memory and sqlite stores). `python -m experiments.bench --only harness`."""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from experiments.bench.targets import target
from experiments.stats import percentile
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.models.scripted import ScriptedModel
from harnesses.models.offline_brain import Call, Conversation, Reply
from sandboxes.local import LocalSandboxProvider
from stores.events import UserMessage
from stores.memory import MemoryStore
from stores.sqlite import SqliteStore


class TimedModel:
    """Records when each model call starts."""

    name = "scripted"

    def __init__(self, inner: ScriptedModel):
        self.inner, self.starts = inner, []

    async def respond(self, request):
        self.starts.append(time.perf_counter())
        return await self.inner.respond(request)


class TimedProvider(LocalSandboxProvider):
    """Local hands that record how long each tool call spends inside the sandbox."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tool_ms: list[float] = []

    async def provision(self):
        sandbox = await super().provision()
        execute = sandbox.execute

        async def timed(name: str, input: Any, key: str | None = None):
            started = time.perf_counter()
            try:
                return await execute(name, input, key)
            finally:
                self.tool_ms.append((time.perf_counter() - started) * 1000)

        sandbox.execute = timed  # type: ignore[method-assign]
        return sandbox


def reader_policy(turns: int) -> Callable[[Conversation], Any]:
    def policy(c: Conversation):
        return Call("read_file", {"path": "data.txt"}) if len(c.exchanges) < turns else Reply("done")

    return policy


async def harness_overhead(store_name: str, sessions: int, turns: int) -> list[float]:
    """Per steady-state turn: wall time between model calls minus time spent in the sandbox (ms)."""
    overheads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore() if store_name == "memory" else SqliteStore(Path(tmp) / "bench.sqlite")
        policy = reader_policy(turns)
        for _ in range(sessions):
            hands = TimedProvider()  # its own folder under /tmp, which its unprivileged user can reach
            model = TimedModel(ScriptedModel(lambda messages: policy))
            harness = DecoupledHarness(store, model, hands, FullContext(), max_turns=turns + 1)
            sid = await store.create_session({"system": "", "setup": {"files": {"data.txt": "x" * 200}}})
            await store.append(sid, [UserMessage("read it").event()], expect=1)
            await harness.wake(sid)
            gaps = [(b - a) * 1000 for a, b in zip(model.starts, model.starts[1:])]
            # turn 1 also provisions the sandbox: steady-state turns only
            overheads += [gap - tool for gap, tool in zip(gaps[1:], hands.tool_ms[1:])]
            await hands.close()
        await store.close()
    return overheads


async def main(quick: bool) -> None:
    sessions, turns = (3, 20) if quick else (10, 50)
    print(f"harness overhead per turn (scripted model, local hands, tool time excluded; {sessions} sessions x {turns} turns)")
    print(f"  {'store':<8} {'p50 ms':>8} {'p95 ms':>8} {'turns':>6}")
    medians = {}
    for store_name in ("memory", "sqlite"):
        overhead = await harness_overhead(store_name, sessions, turns)
        medians[store_name] = statistics.median(overhead)
        print(f"  {store_name:<8} {medians[store_name]:>8.3f} {percentile(overhead, 0.95):>8.3f} {len(overhead):>6}")
    print(f"  sqlite/memory p50 ratio: {medians['sqlite'] / medians['memory']:.1f}x")
    print(f"  {target('overhead p50, memory store', medians['memory'], '<=', 1, ' ms')}")

