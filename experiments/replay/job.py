"""`harnesslab replay` and `harnesslab fork`: start a session from a logged one, run it, check it, report.

Both are Hydra jobs like `harnesslab run`: the overrides choose the harness, model, sandbox, store and
context, and the job writes a results.duckdb (with a `divergences` table) in its output folder.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.replay.fork import ForkError, Origin, ToolDivergence, check_fork_point, load_origin, replay_divergences, start_fork, stream_digest
from experiments.results.save import print_run, save_run, utc_now
from experiments.run.job import quiet_http_logs
from experiments.run.parts import PARTS, build_parts, recorded_choices, start_parts
from experiments.run.runner import SessionRecord, check
from experiments.sessions.sources import SOURCES_HELP, newest_results, open_source
from experiments.tasks.base import Task, Verdict
from experiments.sessions.transcript import printable
from harnesses.models.replay import ReplayModel
from sandboxes.base import Setup
from stores import archive
from stores.base import Event, SessionStore, StoreError
from stores.events import ModelResponse, ToolResult, UserMessage

DIVERGENCES_TABLE = {
    "run_id": "VARCHAR", "session_id": "VARCHAR", "origin_session": "VARCHAR", "position": "INTEGER",
    "tool": "VARCHAR", "input": "JSON", "expected": "VARCHAR", "got": "VARCHAR",
}


@dataclass(frozen=True, slots=True)
class ForkRequest:
    source: str  # where the logged session is: anything experiments.sessions.sources.open_source reads
    session: str  # its id, or a unique prefix of it
    at: int | None = None  # keep events [0, at); None: just after the task (a replay from the start)
    message: str | None = None  # a user message appended after the prefix


@dataclass(frozen=True, slots=True)
class ForkResult:
    origin: Origin
    at: int
    replay: bool
    record: SessionRecord
    events: list[Event]
    divergences: list[ToolDivergence]
    restored: int  # tool calls run again to restore the sandbox
    compared: int  # tool results compared with the log
    answered: int | None  # model calls a replay answered from the recording

    def summary(self, source: str) -> str:
        info = self.origin.info
        what = "replay" if self.replay else "fork"
        lines = [
            f"{what} of session {info.id} ({info.meta.get('suite')}/{info.meta.get('task')}#{info.meta.get('instance')}) "
            f"from {source}, at position {self.at} of {len(self.origin.events)}",
            f"  new session {self.record.session_id}: events [0, {self.at}) copied; "
            f"{self.restored} tool call(s) run again to restore its sandbox",
        ]
        if self.replay:
            recorded = sum(1 for e in self.origin.events[self.at:] if e.type == ModelResponse.TYPE)
            lines.append(f"  model calls answered from the recording: {self.answered} (it logged {recorded} after position {self.at})")
        first = str(self.divergences[0]) if self.divergences else "none"
        lines += [
            f"  tool results compared with the log: {self.compared}, diverged: {len(self.divergences)}",
            f"  first divergence: {first}",
            f"  outcome: {self.record.outcome.status} {self.record.outcome.reason}".rstrip() + f"; check: {self.record.verdict.detail}",
            f"  digest: {stream_digest(self.record.session_id, self.events)} (timestamps, timings and ids normalized)",
        ]
        return "\n".join(lines)


def run_fork_job(cfg: DictConfig, output_dir: Path, choices: dict[str, str], request: ForkRequest) -> Path:
    quiet_http_logs()
    choices = recorded_choices(cfg, choices)
    started = utc_now()
    result = asyncio.run(fork_and_run(cfg, request))
    saved = save_run(cfg, output_dir, choices, started, [result.record], {result.record.session_id: result.events})
    archive.write_table(saved.path, "divergences", DIVERGENCES_TABLE, [
        {**d.row(), "run_id": saved.run_id, "session_id": result.record.session_id, "origin_session": result.origin.info.id}
        for d in result.divergences
    ])
    chosen = " ".join(f"{group}={choices.get(group, '?')}" for group in PARTS)
    print_run(saved, f"harnesslab {'replay' if result.replay else 'fork'} · {chosen}", printable(result.summary(request.source)))
    return saved.path


async def fork_and_run(cfg: DictConfig, request: ForkRequest) -> ForkResult:
    origin, task, why = await _load(request)
    at = request.at if request.at is not None else origin.task_start
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack)
        await start_parts(parts)
        replay = isinstance(parts.model, ReplayModel) and parts.model.session == origin.info.id
        session_id, restored, divergences = await start_fork(
            parts.store, parts.sandboxes, origin, at, request.message, parts.credentials)
        started = time.perf_counter()
        outcome = await parts.harness.wake(session_id)
        for message in origin.user_messages(after=at) if replay else []:  # the recording's later turns
            if outcome.status != "completed":
                break
            again = UserMessage.read(message).event()
            await parts.store.append(session_id, [again], expect=await _length(parts.store, session_id))
            outcome = await parts.harness.wake(session_id)
        duration_ms = (time.perf_counter() - started) * 1000
        if task is not None:
            verdict = await check(task, outcome, parts.sandboxes, Setup.from_meta(origin.info.meta.get("setup")))
        else:
            verdict = Verdict(outcome.status == "completed", f"not checked: {why}")
        events = await parts.store.events(session_id)
    compared = restored
    if replay:
        divergences += replay_divergences(origin, at, events, f"{outcome.status}: {outcome.reason}")
        compared += sum(1 for e in origin.events[at:] if e.type == ToolResult.TYPE)
    meta = origin.info.meta
    record = SessionRecord(session_id, meta.get("suite", ""), meta.get("instance", 0), meta.get("task", ""), outcome, verdict, duration_ms)
    return ForkResult(origin, at, replay, record, events, divergences, restored, compared,
                      parts.model.answered if replay else None)


async def _load(request: ForkRequest) -> tuple[Origin, Task | None, str]:
    source = open_source(request.source)
    try:
        origin = await load_origin(source, request.session)
        task, why = recorded_task(source, origin)
    finally:
        await source.close()
    return origin, task, why


def recorded_task(source: SessionStore, origin: Origin) -> tuple[Task | None, str]:
    """The task the session ran, rebuilt from its run's config, so that the new session gets the same check."""
    config = source.run_config(origin.info.id)
    if config is None or "tasks" not in config:
        return None, "the source keeps no run config to rebuild the task's check from (a results.duckdb does)"
    try:
        tasks = instantiate(OmegaConf.create(config["tasks"]))
    except (InstantiationException, ValueError, TypeError) as exc:
        return None, f"the recorded task config no longer builds: {exc}"
    meta = origin.info.meta
    for suite, instance, task in tasks:
        rebuilt = task.meta(suite, instance)
        if rebuilt == {key: meta.get(key) for key in rebuilt}:
            return task, ""
    return None, f"no task of the recorded run matches {meta.get('suite')}/{meta.get('task')}#{meta.get('instance')} any more"


async def _length(store: SessionStore, session_id: str) -> int:
    return (await store.session(session_id)).length


def command(command: str, argv: list[str], run: Callable[..., int]) -> int:
    """`harnesslab replay|fork SESSION [options] [OVERRIDE ...]`: the options here, the rest goes to Hydra
    (`run(overrides, command, job)` is the CLI's Hydra runner)."""
    replay = command == "replay"
    options = argparse.ArgumentParser(
        prog=f"harnesslab {command}",
        description=("re-drive a logged session with model=replay under any harness, context or sandbox: tools run again "
                     "for real and each result is compared with the logged one" if replay else
                     "create a session from events [0, N) of a logged one (its sandbox restored) and continue it under "
                     "the configured model, harness and context"),
        epilog="Other arguments are Hydra overrides, as for `harnesslab run` (-m sweeps them).",
    )
    options.add_argument("session", help="a session id, or a unique prefix of one")
    options.add_argument("--from", dest="source", help=SOURCES_HELP)
    options.add_argument("--at", type=int, required=not replay,
                         help="keep events [0, N) of the logged session" + ("; default: just after the task" if replay else ""))
    if not replay:
        options.add_argument("--message", help="a new user message after the prefix (to continue a session that ended)")
    args, overrides = options.parse_known_args(argv)
    try:
        source = str(Path(args.source).resolve()) if args.source and "://" not in args.source else args.source
        source = source or str(newest_results(Path.cwd()))
        origin = asyncio.run(_origin(open_source(source), args.session))
        check_fork_point(origin, origin.task_start if args.at is None else args.at, getattr(args, "message", None))
    except (ForkError, StoreError) as exc:
        print(f"harnesslab {command}: {printable(str(exc))}", file=sys.stderr)
        return 1
    if replay and any(o.split("=")[0].lstrip("+~") == "model" for o in overrides):
        print("harnesslab replay: the recording answers every model call; to continue with a model, use "
              "`harnesslab fork SESSION --at N model=...`", file=sys.stderr)
        return 2
    if replay or "model=replay" in overrides:
        overrides = [o for o in overrides if o != "model=replay"]
        overrides += ["model=replay", f"model.session={origin.info.id}", f"model.after={args.at or 0}",
                      f"model.recording.spec='{source}'"]
    request = ForkRequest(source, origin.info.id, args.at, getattr(args, "message", None))
    return run(overrides, command, lambda cfg, output_dir, choices: run_fork_job(cfg, output_dir, choices, request))


async def _origin(store: SessionStore, prefix: str) -> Origin:
    try:
        return await load_origin(store, prefix)
    finally:
        await store.close()
