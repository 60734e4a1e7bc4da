"""What each `harnesslab` subcommand other than run, replay and fork does (experiments/cli/main.py parses them).

Each handler takes the parsed arguments and returns the exit code; it imports what it needs when it runs, so
`harnesslab --help` and a worker's start stay fast."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from pathlib import Path

from experiments.sessions.transcript import printable


def sessions(args: argparse.Namespace, action) -> int:
    from experiments.sessions.sources import read_source

    async def go() -> int:
        source = read_source(args.source, args.schema)
        try:
            return await action(source, args)
        finally:
            await source.store.close()

    return asyncio.run(go())


async def ls(source, args) -> int:
    from experiments.sessions.transcript import session_table

    infos = await source.store.sessions(status=args.status, limit=args.limit)
    print(session_table(infos, source.where))
    if not infos and await source.is_empty():
        for hint in source.elsewhere:
            print(f"harnesslab: {printable(hint)}", file=sys.stderr)
    return 0


async def show(source, args) -> int:
    from experiments.sessions.transcript import transcript

    from experiments.replay.fork import ForkError, find_session

    try:
        info = await find_session(source.store, args.session)
    except ForkError as exc:
        hints = source.elsewhere if await source.is_empty() else []
        print(printable("; ".join([f"harnesslab: {exc} (looked in {source.where})", *hints])), file=sys.stderr)
        return 1
    if source.defaulted:
        print(f"harnesslab: from {source.where}", file=sys.stderr)
    print(transcript(info, await source.store.events(info.id), args.width))
    return 0


async def export(source, args) -> int:
    from stores.archive import export_sessions

    await source.require_sessions()  # else an error, and no empty archive: the sessions are somewhere else
    count = await export_sessions(source.store, args.to, run_id=f"export-{uuid.uuid4().hex[:8]}")
    print(f"exported {count} session(s) from {source.where} to {args.to}")
    return 0


async def traces(source, args) -> int:
    from experiments.sessions.traces import export_traces

    await source.require_sessions()
    sessions, spans = await export_traces(source.store, args.to)
    print(f"wrote {spans} span(s) of {sessions} session(s) from {source.where} to {args.to}")
    return 0


def emulator(args: argparse.Namespace) -> int:
    from experiments.tasks import policy_book
    from harnesses.emulator.server import EmulatorServer
    from harnesses.emulator.service import FaultProfile, LatencyProfile

    latency = LatencyProfile.load(args.latency) if args.latency else LatencyProfile()
    try:
        rates = {k: float(v) for k, v in (item.split("=", 1) for item in args.faults.split(","))} if args.faults else {}
        faults = FaultProfile(**rates)
    except (TypeError, ValueError) as exc:
        print(f"harnesslab: --faults {args.faults!r}: {exc}; valid names: rate_limit, overloaded, server_error, "
              "disconnect, retry_after_s, seed", file=sys.stderr)
        return 2

    async def serve() -> None:
        server = EmulatorServer(policy_book(), latency, faults, strict=not args.loose)
        url = await server.start(args.host, args.port)
        print(f"Messages-API emulator on {url}{' (validation loose)' if args.loose else ''} (Ctrl-C stops it). To use it:\n"
              f"  ANTHROPIC_API_KEY=any harnesslab run model=anthropic model.base_url={url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


def serve(args: argparse.Namespace) -> int:
    import os
    import secrets

    from experiments.run.job import compose_config, quiet_http_logs
    from experiments.run.runner import run_to_cleanup

    overrides = ["+serve=default", *args.overrides]
    if not os.environ.get("HARNESSLAB_SQLITE_PATH") and not any(o.lstrip("+~").startswith("store") for o in args.overrides):
        overrides.append("store.path=${serve.store_path}")  # the default store, sqlite, in a place of its own
    cfg = compose_config(overrides, groups=("harness", "model", "sandbox", "store", "context", "credentials"))
    quiet_http_logs()
    environment_key = args.environment_key or f"envkey_{secrets.token_hex(16)}"

    async def go() -> None:
        async with served(cfg, args.port, environment_key) as (server, _):
            print(f"Managed Agents API on {server.url} (Ctrl-C stops it). To use it:\n"
                  f"  client = anthropic.Anthropic(base_url=\"{server.url}\", api_key=\"any\")\n"
                  f"environment key (self-hosted environments' workers authenticate with it): {environment_key}", flush=True)
            await asyncio.Event().wait()

    try:
        run_to_cleanup(go())
    except KeyboardInterrupt:
        pass
    return 0


@contextlib.asynccontextmanager
async def served(cfg, port: int = 0, environment_key: str = ""):
    """(a ManagedServer on `port` (0: a free one), the parts `cfg` chooses that it serves) until the context exits;
    self-hosted environments' workers authenticate with `environment_key`."""
    from contextlib import AsyncExitStack

    from experiments.run.config_check import ConfigError
    from experiments.run.parts import build, build_parts, start_parts
    from managed.server import ManagedServer, serving

    keys = list(cfg.serve.api_keys or [])
    if not all(isinstance(key, str) and key for key in keys):
        raise ConfigError(f"serve.api_keys={keys!r}: expected a list of non-empty strings (empty: any key is accepted)")
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack, wrap=serving)
        await start_parts(parts)
        credentials = {"credentials": parts.credentials.credentials} if parts.credentials is not None else {}

        def worker_harness(hands):  # the configured harness over a self-hosted worker's hands (managed/hands.py)
            return build(cfg, "harness", store=parts.store, model=parts.model, sandboxes=hands, context=parts.context,
                         interrupted="rerun", **credentials)

        server = ManagedServer(parts.store, parts.harness, parts.sandboxes.hand, keys, task_meta, worker_harness=worker_harness,
                               environment_key=environment_key, lease_ttl_s=cfg.serve.lease_ttl_s)
        await server.start(cfg.serve.host, port)
        try:
            yield server, parts
        finally:
            await server.stop()


def task_meta(name: str) -> dict:
    """The meta of one of harnesslab's tasks, by `name` or `suite/name`, for a served session that runs it."""
    from experiments.tasks import load_suite, suites

    suite, _, wanted = name.rpartition("/")
    for candidate in [suite] if suite else list(suites()):
        for found_suite, instance, task in load_suite(candidate) if candidate in suites() else []:
            if task.name == wanted:
                return task.meta(found_suite, instance)
    raise LookupError(f"no task {name!r} in harnesslab's suites; e.g. greeting, fix_bug or smoke/find_needle")


def calibrate(args: argparse.Namespace) -> int:
    import os

    from experiments.bench import calibrate
    from harnesses.models.anthropic import AnthropicModel

    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        print(f"harnesslab: --sizes {args.sizes!r}: expected whole numbers separated by commas", file=sys.stderr)
        return 2
    if os.environ.get("ANTHROPIC_API_KEY"):
        model, target = AnthropicModel(model=args.model, base_url=args.base_url), args.base_url or f"the API ({args.model})"
    else:
        from experiments.tasks import policy_book
        from harnesses.models.emulator import EmulatorModel

        model, target = EmulatorModel(policy_book()), "the emulator's default profile (no ANTHROPIC_API_KEY: a self-check)"

    async def go():
        try:
            return await calibrate.measure(model, sizes, args.repeats)
        finally:
            await model.close()

    samples = asyncio.run(go())
    profile = calibrate.fit(samples)
    text = calibrate.summary(samples, profile, target)
    profile.save(args.out, comment=f"{text}\nuse: harnesslab run model.latency_file={args.out}")
    print(f"{text}\nwrote {args.out}")
    return 0


def worker(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from experiments.run.config_check import check_config
    from experiments.faults.failpoints import Failpoints
    from experiments.run.runner import run_to_cleanup
    from experiments.workers.worker import serve

    if args.config and args.overrides:
        raise SystemExit("harnesslab worker: give --config or overrides, not both")
    if args.config:  # a resolved config a fault run wrote
        cfg = OmegaConf.load(args.config)
        check_config(cfg)
    else:
        from experiments.run.job import compose_config  # not above: a worker restarted on --config has no use for pandas

        cfg = compose_config(args.overrides)
    failpoints = None
    if args.crash_at or args.sandbox_kills:
        failpoints = Failpoints(args.crash_at, args.crash_rate, args.sandbox_kills, args.sandbox_kill_rate, args.fault_log, args.fault_seed)
    return run_to_cleanup(serve(cfg, args.slot, exit_when_idle=not args.forever, acks=args.acks, failpoints=failpoints,
                                check=args.check, fault_seed=args.fault_seed))


def submit(args: argparse.Namespace) -> int:
    from experiments.run.job import compose_config
    from experiments.run.parts import build
    from stores.events import UserMessage

    cfg = compose_config(args.overrides, groups=("store", "tasks"))
    tasks = build(cfg, "tasks")

    async def go() -> int:
        store = build(cfg, "store")
        try:
            for suite, instance, task in tasks:
                session_id = await store.create_session(task.meta(suite, instance))
                await store.append(session_id, [UserMessage(task.prompt).event()], expect=1)
        finally:
            await store.close()
        print(f"submitted {len(tasks)} session(s)")
        return 0

    return asyncio.run(go())


def collect(args: argparse.Namespace) -> int:
    import time

    from experiments.workers.collect import collect_job
    from experiments.run.job import compose_config
    from experiments.run.parts import PARTS

    cfg = compose_config(args.overrides, groups=("store", "sandbox", "tasks"))
    out = args.out or Path("outputs") / f"collect-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    out.mkdir(parents=True, exist_ok=True)
    choices = dict(o.split("=", 1) for o in args.overrides if o.split("=", 1)[0] in PARTS)
    named = {o.split("=", 1)[0].lstrip("+~").split(".")[0] for o in args.overrides}  # the parts collect was told of
    collect_job(cfg, out, choices, groups=("store", *sorted(named & set(PARTS) - {"store"})))
    return 0


def report(args: argparse.Namespace) -> int:
    from experiments.report.main import report

    try:
        print(report(args.path, args.out))
    except (FileNotFoundError, ValueError) as exc:
        print(f"harnesslab: {printable(str(exc))}", file=sys.stderr)
        return 1
    return 0


def docker_setup(args: argparse.Namespace) -> int:
    import time

    from sandboxes.docker_engine import ensure_engine, ensure_image

    started = time.monotonic()
    ensure_engine()
    tag = ensure_image()
    print(f"Docker engine answers; sandbox image {tag} ready ({time.monotonic() - started:.1f} s)")
    return 0


def sandbox_prune(args: argparse.Namespace) -> int:
    import docker

    from sandboxes.docker import prune

    client = docker.from_env()
    try:
        removed = prune(client.api, orphans_only=not args.all)
        print(f"removed {removed} harnesslab container(s)" + ("" if args.all else " whose run has ended"))
    finally:
        client.close()
    return 0


def postgres_start(args: argparse.Namespace) -> int:
    from stores.postgres_server import LocalPostgres

    dsn = LocalPostgres(args.dir.resolve(), args.port, detach=True).start()
    print(f"PostgreSQL is up ({args.dir}). To use it:\n  export HARNESSLAB_POSTGRES_DSN={dsn}\n  harnesslab run store=postgres")
    return 0


def postgres_stop(args: argparse.Namespace) -> int:
    from stores.postgres_server import LocalPostgres

    LocalPostgres(args.dir.resolve()).stop()
    print(f"PostgreSQL in {args.dir} stopped")
    return 0
