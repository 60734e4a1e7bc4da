"""The decoupled harness: a stateless loop over the session log; hands are provisioned lazily."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from harnesses.base import ContextStrategy, Harness, Model, ModelError, ModelRequest, Outcome
from harnesses.hands import DEFAULT_HAND, FirstResult, Hands
from harnesses.log import SessionLog
from harnesses.messages import content_problem
from harnesses.routing import Router
from harnesses.steps import CallModel, Ended, Finish, RunTools, ended, log_problem, next_step, open_calls
from harnesses.telemetry import response_data, turn_timing
from sandboxes.base import SandboxError, SandboxProvider
from stores.base import Conflict, SessionStore, StoreUnavailable
from stores.events import HarnessWoke, SessionFailed, ToolResult, session_ended

if TYPE_CHECKING:
    from sandboxes.credentials.client import SessionCredentials

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Wake:
    """What one wake works with: the session's log, its hands, and when the wake began."""

    session: SessionLog
    hands: Hands
    started: float  # time.time() when the harness woke
    context: list[dict[str, Any]] | None = None  # the messages of this wake's last model call


class DecoupledHarness(Harness):
    """`wake(session_id)` reads the log and carries on from there; it keeps nothing between wakes."""

    name = "decoupled"

    def __init__(
        self,
        store: SessionStore,
        model: Model,
        sandboxes: SandboxProvider,
        context: ContextStrategy,
        max_turns: int = 50,
        max_tokens: int = 4096,
        interrupted: str = "idempotent",
        worker: str | None = None,
        credentials: SessionCredentials | None = None,
        hands: Sequence[str] | None = None,
    ):
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.store, self.model, self.sandboxes, self.context = store, model, sandboxes, context
        self.max_turns, self.max_tokens = max_turns, max_tokens
        self.worker = worker  # the worker slot driving this harness, recorded in harness.woke
        self.credentials = credentials
        self.router = Router(sandboxes, context, credentials, hands, interrupted)
        self.hand_names = self.router.hand_names

    async def wake(self, session_id: str) -> Outcome:
        started = time.time()
        session = await SessionLog.open(self.store, session_id)
        hands = self._hands(session)
        done = ended(session.events)
        if done is not None:
            return _outcome(session, hands, done)
        problem = log_problem(session.events)  # a log read from a store may hold anything
        if problem is not None:
            return await self._fail(session, hands, f"malformed log: {problem}")
        named = list(self.hand_names) if self.hand_names != (DEFAULT_HAND,) else None
        session.write(HarnessWoke(self.name, os.getpid(), socket.gethostname(), self.worker, named).event())  # the claim commits while the first request goes out; a lost claim cancels that request
        try:
            await self._before_loop(session, hands)
            return await self._loop(Wake(session, hands, started))
        except Conflict as exc:
            return Outcome(session_id, "conflict", str(exc), sandbox_id=hands.sandbox_id)
        except StoreUnavailable:  # not the session's fault: it stays active, and a later wake carries on
            raise
        except (ModelError, SandboxError) as exc:
            return await self._fail(session, hands, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in a part must fail the session, not hang it
            log.exception("harness error in session %s", session_id)
            return await self._fail(session, hands, f"harness error: {type(exc).__name__}: {exc}")
        finally:
            await session.settled()

    # -- what another design changes (see harnesses/coupled.py) ----------------------------------

    def _hands(self, session: SessionLog) -> Hands:
        """Hands provisioned at the first tool call that needs them, and replaced when lost."""
        return Hands(self.sandboxes, session, fetch=self._fetch(session), names=self.hand_names)

    def _fetch(self, session: SessionLog):
        """How the session's setup clones repositories: through the proxy, with the session's capability."""
        return self.credentials.fetcher(session.session_id) if self.credentials is not None else None

    async def _before_loop(self, session: SessionLog, hands: Hands) -> None:
        """Nothing: the first model call does not wait for hands."""

    # -- the loop ---------------------------------------------------------------------------------

    async def _loop(self, wake: Wake) -> Outcome:
        session, hands = wake.session, wake.hands
        while True:
            step = next_step(session.events, self.max_turns)
            if isinstance(step, CallModel):
                await self._call_model(wake, step)
            elif isinstance(step, RunTools):
                await self._run_tools(session, hands, step)
            else:
                if isinstance(step, Finish):
                    await session.append(session_ended(step.status, step.reason, step.final_text))
                return _outcome(session, hands, step)

    async def _call_model(self, wake: Wake, step: CallModel) -> None:
        session = wake.session
        await self.context.before_call(session, self.model)  # a strategy that maintains the log (compaction)
        started = time.perf_counter()
        messages = await self.context.build(session.events)
        context_ms = (time.perf_counter() - started) * 1000
        request = self.context.shape(ModelRequest(session.meta.get("system", ""), messages, self.router.offered(session.meta), self.max_tokens))
        requested = time.time()
        response = await session.meanwhile(self.model.respond(request))  # the log commits what made it due meanwhile
        problem = content_problem(response.content)
        if problem is not None:  # never logged: the next wake could not read it
            raise ModelError(f"the model's response is malformed: {problem}")
        record = response_data(response, requested, context_ms, self.context.name, messages, wake.context)
        wake.context = messages
        if step.first_of_turn:  # user message in the log -> first token of the reply
            record = turn_timing(record, step, requested, wake.started, wake.hands.provision_ms)
        await session.append(record.event())

    async def _run_tools(self, session: SessionLog, hands: Hands, step: RunTools) -> None:
        """Calls on one hand run in order; calls on different hands run at the same time."""
        offered = {tool["name"] for tool in self.router.offered(session.meta)}
        queues: dict[str, list[dict]] = {}
        for call in step.calls:
            queues.setdefault(self.router.queue(call), []).append(call)

        async def run_in_order(calls: list[dict]) -> None:
            for call in calls:
                result = await self.router.run(session, hands, step, call, offered)
                new_sandbox = result.new_sandbox if isinstance(result, FirstResult) else None  # see hands.held
                session.write(ToolResult(  # the next model call need not wait for it to commit
                    call.get("id"), call.get("name"), result.output, result.is_error, result.duration_ms, new_sandbox).event())

        if len(queues) == 1:
            return await run_in_order(*queues.values())
        running = [asyncio.create_task(run_in_order(calls)) for calls in queues.values()]
        try:
            await asyncio.gather(*running)
        except BaseException:  # the session fails (or the harness stops): no hand goes on writing to its log
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise

    async def _fail(self, session: SessionLog, hands: Hands, reason: str) -> Outcome:
        """End the session, first answering every logged tool call still open: the log says how each ended."""
        session = await session.durable_copy()  # without observers: whatever mirrored the log may be what failed
        closing = [
            ToolResult(call.tool_use_id, call.name, f"not completed: the session failed ({reason})", True, 0.0).event()
            for call in open_calls(session.events)
        ]
        try:
            await session.append(*closing, SessionFailed(reason).event())
        except Conflict:
            return Outcome(session.session_id, "conflict", reason, sandbox_id=hands.sandbox_id)
        return Outcome(session.session_id, "failed", reason, sandbox_id=hands.sandbox_id)


def _outcome(session: SessionLog, hands: Hands, step: Finish | Ended) -> Outcome:
    return Outcome(session.session_id, step.status, step.reason, step.final_text, hands.sandbox_id)
