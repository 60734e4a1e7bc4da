"""The decoupled harness: a stateless loop over the session log; hands are provisioned lazily."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from harnesses.base import ContextStrategy, Model, ModelError, ModelRequest, Outcome
from harnesses.hands import DEFAULT_HAND, FirstResult, Hands
from harnesses.log import SessionLog
from harnesses.messages import content_problem, stable_prefix
from harnesses.steps import CallModel, Ended, Finish, RunTools, ended, log_problem, next_step, open_calls
from sandboxes.base import SandboxError, SandboxProvider, ToolResult
from sandboxes.tools import TOOLS
from stores.base import Conflict, Event, SessionStore, StoreUnavailable

if TYPE_CHECKING:
    from sandboxes.credentials.client import SessionCredentials

log = logging.getLogger(__name__)

INTERRUPTED_POLICIES = ("idempotent", "error", "rerun")


@dataclass(slots=True)
class Wake:
    """What one wake works with: the session's log, its hands, and when the wake began."""

    session: SessionLog
    hands: Hands
    started: float  # time.time() when the harness woke
    context: list[dict[str, Any]] | None = None  # the messages of this wake's last model call


class DecoupledHarness:
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
        if interrupted not in INTERRUPTED_POLICIES:
            raise ValueError(f"interrupted={interrupted!r}; valid: {', '.join(INTERRUPTED_POLICIES)}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.hand_names = hand_names(hands)  # the sandboxes a session may hold at once; calls name theirs
        self.store, self.model, self.sandboxes, self.context = store, model, sandboxes, context
        self.max_turns, self.max_tokens, self.interrupted = max_turns, max_tokens, interrupted
        self.worker = worker  # the worker slot driving this harness, recorded in harness.woke
        # tools the context strategy answers itself (recall, memory): about the log, so an interrupted one just runs again
        self._context_tools = {t.name: t for t in getattr(context, "tools", ())}
        # tools the credential proxy runs with the session's capability: the harness never holds a secret
        self.credentials = credentials
        self._proxy_tools = {t.name: t for t in credentials.tools} if credentials else {}

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
        woke = Event("harness.woke", {"harness": self.name, "pid": os.getpid(), "host": socket.gethostname(), "worker": self.worker,
                                      **({"hands": list(self.hand_names)} if self.hand_names != (DEFAULT_HAND,) else {})})
        session.write(woke)  # the claim commits while the first request goes out; a lost claim cancels that request
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
                    await session.append(
                        Event(f"session.{step.status}", {"reason": step.reason, "final_text": step.final_text})
                    )
                return _outcome(session, hands, step)

    async def _call_model(self, wake: Wake, step: CallModel) -> None:
        session = wake.session
        before_call = getattr(self.context, "before_call", None)  # a strategy that maintains the log (compaction)
        if before_call is not None:
            await before_call(session, self.model)
        started = time.perf_counter()
        messages = await self.context.build(session.events)
        context_ms = (time.perf_counter() - started) * 1000
        request = ModelRequest(session.meta.get("system", ""), messages, self._offered(session.meta), self.max_tokens)
        requested = time.time()
        response = await session.meanwhile(self.model.respond(request))  # the log commits what made it due meanwhile
        problem = content_problem(response.content)
        if problem is not None:  # never logged: the next wake could not read it
            raise ModelError(f"the model's response is malformed: {problem}")
        data: dict[str, Any] = {
            "content": response.content,
            "stop_reason": response.stop_reason,
            "usage": response.usage.to_dict(),
            "model": response.model,
            "request_id": response.request_id,
            "requested_at": requested,
            "ttft_ms": response.ttft_ms,
            "server_ttft_ms": response.server_ttft_ms,
            "latency_ms": response.latency_ms,
            "context_ms": context_ms,
            "retries": list(response.retries),
            # how much of this call's context the last one had too (a prompt cache can serve it); unknown after a wake
            "context": {"strategy": getattr(self.context, "name", type(self.context).__name__), "messages": len(messages),
                        "stable_messages": stable_prefix(wake.context, messages) if wake.context is not None else None},
        }
        wake.context = messages
        if step.first_of_turn:  # user message in the log -> first token of the reply
            turn_ttft = (requested - step.turn_started) * 1000 + response.ttft_ms
            parts = {
                "queue_ms": max(0.0, (wake.started - step.turn_started) * 1000),  # waiting for a harness
                "provision_ms": wake.hands.provision_ms,  # hands readied before this call
                "context_ms": context_ms,
                "model_ttft_ms": response.ttft_ms,
            }
            data["turn_ttft_ms"] = turn_ttft
            data["turn_breakdown"] = {**parts, "other_ms": max(0.0, turn_ttft - sum(parts.values()))}
        await session.append(Event("model.response", data))

    async def _run_tools(self, session: SessionLog, hands: Hands, step: RunTools) -> None:
        """Calls on one hand run in order; calls on different hands run at the same time."""
        offered = {tool["name"] for tool in self._offered(session.meta)}
        queues: dict[str, list[dict]] = {}
        for call in step.calls:
            queues.setdefault(self._route(call), []).append(call)

        async def run_in_order(calls: list[dict]) -> None:
            for call in calls:
                result = await self._run_tool(session, hands, step, call, offered)
                session.write(Event("tool.result", {  # the next model call need not wait for it to commit
                    "tool_use_id": call.get("id"), "name": call.get("name"), "output": result.output,
                    "is_error": result.is_error, "duration_ms": result.duration_ms,
                    **({"new_sandbox": result.new_sandbox} if isinstance(result, FirstResult) else {}),  # see hands.held
                }))

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

    def _route(self, call: dict) -> str:
        """The queue a call waits in: its hand's (a wrong hand name: the first's), or that of a harness tool."""
        name = call.get("name")
        if name in self._context_tools or name in self._proxy_tools:
            return f"({name})"
        hand, _ = self._hand_of(call.get("input"))
        return hand if isinstance(hand, str) else self.hand_names[0]

    async def _run_tool(self, session: SessionLog, hands: Hands, step: RunTools, call: dict, offered: set[str]) -> ToolResult:
        tool_use_id, name, input = call.get("id"), call.get("name"), call.get("input")
        if tool_use_id in step.refused:
            return ToolResult(step.refused[tool_use_id], is_error=True)
        if name not in offered:
            return ToolResult(f"tool {name!r} is not offered in this session; offered: {', '.join(sorted(offered))}", True)
        own = name in self._context_tools  # the session reading itself: answered from the log, not by the hands
        proxied = name in self._proxy_tools
        hand, input = (None, input) if own or proxied else self._hand_of(input)
        if tool_use_id in step.logged and not own and not self._may_rerun(name):
            return ToolResult(
                "interrupted: this tool call started before a crash and its outcome is unknown; "
                "check the workspace before retrying",
                is_error=True,
            )
        key = f"{session.session_id}:{tool_use_id}"
        if tool_use_id not in step.logged:
            await session.append(Event("tool.call", {
                "tool_use_id": tool_use_id, "name": name, "input": call.get("input"),
                "hand": "harness" if own else "proxy" if proxied else self.sandboxes.hand, "idempotency_key": key,
                **({"hand_name": hand} if isinstance(hand, str) else {}),
            }))
        if own:
            return await self.context.run_tool(name, input, session.events)
        if proxied:
            return await self.credentials.run_tool(name, input, session.session_id)
        if isinstance(hand, ToolResult):
            return hand
        return await hands.execute(name, input, key, hand)

    def _hand_of(self, input: Any) -> tuple[str | ToolResult, Any]:
        """(the hand a sandbox call runs on, its input without the `hand` field), or (an error result, input)."""
        if len(self.hand_names) == 1 or not isinstance(input, dict):
            return self.hand_names[0], input
        input = dict(input)
        hand = input.pop("hand", self.hand_names[0])
        if hand not in self.hand_names:
            return ToolResult(f"hand {hand!r} is not one of this session's hands; valid: {', '.join(self.hand_names)}", True), input
        return hand, input

    def _may_rerun(self, name: str) -> bool:
        if self.interrupted == "idempotent":
            return name in TOOLS and TOOLS[name].idempotent
        return self.interrupted == "rerun"

    def _offered(self, meta: dict) -> list[dict[str, Any]]:
        """The tools shown to the model: the sandbox's, narrowed by the session's `tools` list, the context's,
        and the proxy's that the session was granted."""
        wanted = meta.get("tools")
        granted = (meta.get("credentials") or {}).get("tools") or ()
        return [with_hands(t.to_api(), self.hand_names) for t in self.sandboxes.tools if wanted is None or t.name in wanted] + [
            t.to_api() for t in self._context_tools.values()] + [
            t.to_api() for t in self._proxy_tools.values() if t.name in granted]

    async def _fail(self, session: SessionLog, hands: Hands, reason: str) -> Outcome:
        """End the session, first answering every logged tool call still open: the log says how each ended."""
        session = await session.durable_copy()  # without observers: whatever mirrored the log may be what failed
        closing = [
            Event("tool.result", {"tool_use_id": call["tool_use_id"], "name": call.get("name"), "is_error": True,
                                  "output": f"not completed: the session failed ({reason})", "duration_ms": 0.0})
            for call in open_calls(session.events)
        ]
        try:
            await session.append(*closing, Event("session.failed", {"reason": reason}))
        except Conflict:
            return Outcome(session.session_id, "conflict", reason, sandbox_id=hands.sandbox_id)
        return Outcome(session.session_id, "failed", reason, sandbox_id=hands.sandbox_id)


_HAND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def hand_names(hands: Sequence[str] | None) -> tuple[str, ...]:
    """The hands a harness gives each session: `main` alone, or several distinct names (the first is the default)."""
    if hands is None:
        return (DEFAULT_HAND,)
    names = tuple(hands) if not isinstance(hands, str) else (hands,)
    bad = [n for n in names if not isinstance(n, str) or not _HAND_NAME.match(n)]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"harness.hands={list(names)}: give one or more distinct names of lowercase letters, digits, "
                         f"_ or - (starting with a letter), e.g. [main] or [a, b]" + (f"; not valid: {bad}" if bad else ""))
    return names


def with_hands(tool: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A sandbox tool's API entry; with several hands, its input gains `hand`: which one runs the call."""
    if len(names) == 1:
        return tool
    schema = tool["input_schema"]
    hand = {"type": "string", "enum": list(names),
            "description": f"Which hand (sandbox, with a workspace of its own) runs this call; default {names[0]}. "
                           "Calls on different hands run at the same time."}
    return {**tool, "input_schema": {**schema, "properties": {**schema["properties"], "hand": hand}}}


def _outcome(session: SessionLog, hands: Hands, step: Finish | Ended) -> Outcome:
    return Outcome(session.session_id, step.status, step.reason, step.final_text, hands.sandbox_id)
