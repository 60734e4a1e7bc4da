"""The hands of a self-hosted environment: its worker (the SDK's EnvironmentWorker, on whatever machine polls the
environment's queue). A session on such an environment is driven by a harness whose provider is `WorkerHands`: a
tool call runs nowhere here. Its agent.tool_use is already on the session's events (projected from the model's
response, the session then idle with `requires_action`), the environment gets work on its queue unless a live item
serves the session, and the call waits until the worker's `user.tool_result` is in the log (a WorkerResult), which
it gives the harness as the call's result.

Waiting holds a coroutine, nothing else: the log says what the session waits for, a server started again does not
wake it (it is idle), and the worker's result wakes it (managed/server.py); a wake that finds the result in the log
returns it at once. So the harness over these hands re-runs an interrupted call (`interrupted=rerun`): to run a call
again here is to wait for its result again.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Sequence

from managed.toolset import AGENT_TOOLS
from managed.watch import WatchedStore
from managed.work import WorkQueue
from sandboxes.base import Fetch, Sandbox, SandboxError, SandboxProvider, Setup, SetupFailed, ToolResult
from sandboxes.tools import ToolSpec
from stores.events import ToolCall, WorkerResult

WORKER_HAND = "self_hosted"  # the hand (tool.call's, sandbox.provisioned's) of a self-hosted environment's worker
POLL_S = 0.5  # how often a waiting call looks for a result another process appended to a shared store
RECHECK_S = 2.0  # how often a waiting call makes sure a live work item serves its session


class WorkerHands(SandboxProvider):
    """Every self-hosted environment's worker, as harnesslab's hands: each "sandbox" waits for the worker's results."""

    hand = WORKER_HAND

    def __init__(self, store: WatchedStore, queue: WorkQueue):
        self.store, self.queue = store, queue

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return tuple(AGENT_TOOLS.values())

    async def provision(self) -> Sandbox:
        return WorkerSandbox(self, f"worker-{uuid.uuid4().hex[:12]}")

    async def attach(self, sandbox_id: str) -> Sandbox:
        return WorkerSandbox(self, sandbox_id)  # the worker is outside: there is nothing here to lose

    async def result_of(self, session_id: str, tool_use_id: str) -> ToolResult:
        """The worker's result for the call, once it is in the session's log (its duration: from the call's tool.call
        to the result); meanwhile, work stays queued for it."""
        read, environment_id, checked, called = 0, None, -RECHECK_S, time.time()
        while True:
            grown = self.store.grown(session_id)  # before reading: an append from now on sets it
            events = await self.store.events(session_id, start=read)
            environment_id = environment_id or events[0].data["environment_id"]
            read += len(events)
            for event in events:
                if event.type == ToolCall.TYPE and ToolCall.value(event, "tool_use_id") == tool_use_id:
                    called = event.ts
                if event.type == WorkerResult.TYPE and WorkerResult.value(event, "tool_use_id") == tool_use_id:
                    result = WorkerResult.read(event)
                    return ToolResult(result.output, result.is_error, max(0.0, event.ts - called) * 1000)
            if time.monotonic() - checked >= RECHECK_S:  # the worker that held it may have stopped it, or died
                await self.queue.ensure(environment_id, session_id)
                checked = time.monotonic()
            try:
                await asyncio.wait_for(grown.wait(), POLL_S)
            except TimeoutError:
                pass


class WorkerSandbox(Sandbox):
    def __init__(self, hands: WorkerHands, sandbox_id: str):
        self.hands, self.id, self.hand = hands, sandbox_id, WORKER_HAND

    async def execute(self, name: str, input: Any, key: str | None = None) -> ToolResult:
        """The worker's result for this call; its input is the worker's to check, as it runs every agent.tool_use."""
        return await self.hands.result_of(*_call_of(key))

    async def prepare(self, setup: Setup, fetch: Fetch | None = None) -> None:
        if setup.files or setup.commands or setup.repos:
            raise SetupFailed(f"{self.id}: a self-hosted environment's workspace is its worker's folder, which harnesslab "
                              "cannot prepare")

    async def _run(self, name: str, input: dict) -> tuple[str, bool]:
        raise NotImplementedError("a worker's sandbox runs nothing: execute waits for the worker's result")

    async def close(self) -> None:
        """Nothing to remove: the worker's folder is its own."""


def _call_of(key: str | None) -> tuple[str, str]:
    """(session id, tool_use id) of a call, from the idempotency key the router gives it (`<session>:<tool_use id>`,
    harnesses/routing.py): which session's log holds the result, and which result it is."""
    session_id, colon, tool_use_id = (key or "").partition(":")
    if not (session_id and colon and tool_use_id):
        raise SandboxError(f"a self-hosted worker's call needs the key <session id>:<tool_use id>, got {key!r}")
    return session_id, tool_use_id
