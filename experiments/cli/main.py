"""The `harnesslab` command line.

  harnesslab run [-m] [OVERRIDE ...]          run an experiment (Hydra overrides; -m sweeps)
  harnesslab sessions ls|show|export|traces   list, read, archive or trace session logs from any source
  harnesslab replay SESSION [--from R]        re-drive a logged session with no model, under any config
  harnesslab fork SESSION --at N [OVERRIDE]   continue events [0, N) of a logged session another way
  harnesslab emulator [--port N]              serve the Messages-API emulator standalone
  harnesslab serve --port N [OVERRIDE ...]    serve the Managed Agents API over harnesslab's parts
  harnesslab calibrate [--out F]              measure the API's latency into an emulator profile
  harnesslab submit / worker / collect [OVERRIDES]   sessions in a shared store, driven by restartable workers
  harnesslab report PATH ... [--out D]       what results files' runs vary and each section about them; plots
  harnesslab docker setup                     start a Docker engine and build the sandbox image offline
  harnesslab sandbox prune [--all]            remove the sandbox containers of runs that have ended
  harnesslab postgres start|stop              a throwaway local PostgreSQL for store=postgres
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.cli import handlers
from experiments.faults.failpoints import POINTS
from experiments.paths import CONFIG_DIR, keep_outputs_private
from experiments.sessions.transcript import printable

EXAMPLES = """examples:
  harnesslab run
  harnesslab run store=memory tasks.only=[greeting,fix_bug] run.concurrency=2
  harnesslab run -m store=memory,sqlite
  harnesslab run faults=[harness_kill,model_faults]   # supervised workers, real faults, then every check
  harnesslab run --help                       # config groups and their options
  harnesslab sessions ls
  harnesslab sessions show 3f2a               # a unique prefix of a session id is enough
  harnesslab replay 3f2a --from outputs/2026-11-24/10-03-56-748408/results.duckdb context=recall sandbox=docker
  harnesslab fork 3f2a --at 40 context=compaction  # what if the brain had compacted from step 40 on?
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    keep_outputs_private()
    if os.getcwd() not in sys.path:  # a user's own parts, from the folder the run starts in; last: it shadows nothing
        sys.path.append(os.getcwd())
    if argv and argv[0] == "run":
        return run(argv[1:])
    if argv and argv[0] in ("replay", "fork"):
        from experiments.replay.job import command

        return command(argv[0], argv[1:], run)
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as exc:
        if not users_mistake(exc):
            raise
        print(f"harnesslab: {printable(str(exc))}", file=sys.stderr)
        return 1


def users_mistake(exc: BaseException) -> bool:
    """An error the user fixes from its message alone: the CLI prints it as one line, with no traceback."""
    from experiments.run.config_check import ConfigError
    from sandboxes.base import SandboxError
    from stores.base import StoreError

    return isinstance(exc, (ConfigError, StoreError, SandboxError))


def parser() -> argparse.ArgumentParser:
    from experiments.sessions.sources import SOURCES_HELP

    top = argparse.ArgumentParser(
        prog="harnesslab", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(title="commands", metavar="COMMAND", required=True)
    commands.add_parser("run", help="run an experiment: harnesslab run [-m] [OVERRIDE ...]", add_help=False)
    commands.add_parser("replay", help="re-drive a logged session with model=replay: harnesslab replay SESSION --from RESULTS",
                        add_help=False)
    commands.add_parser("fork", help="a new session from events [0, N) of a logged one: harnesslab fork SESSION --at N",
                        add_help=False)

    sessions = commands.add_parser("sessions", help="list, read or archive session logs").add_subparsers(
        metavar="ACTION", required=True
    )
    ls = sessions.add_parser("ls", help="list sessions")
    ls.add_argument("source", nargs="?", help=SOURCES_HELP)
    ls.add_argument("--status", choices=["active", "completed", "failed"])
    ls.add_argument("--limit", type=int)
    ls.set_defaults(handler=lambda a: handlers.sessions(a, handlers.ls))
    show = sessions.add_parser("show", help="print a readable transcript of one session")
    show.add_argument("session", help="a session id, or a unique prefix of one")
    show.add_argument("source", nargs="?", help=SOURCES_HELP)
    show.add_argument("--width", type=int, default=100, help="characters per event line")
    show.set_defaults(handler=lambda a: handlers.sessions(a, handlers.show))
    export = sessions.add_parser("export", help="copy sessions into a results.duckdb `events` table")
    export.add_argument("source", help=SOURCES_HELP)
    export.add_argument("--to", required=True, type=Path, help="the results.duckdb to write (created if missing)")
    export.set_defaults(handler=lambda a: handlers.sessions(a, handlers.export))
    traces = sessions.add_parser("traces", help="write sessions as OpenTelemetry traces (GenAI conventions), one span per JSON line")
    traces.add_argument("source", nargs="?", help=SOURCES_HELP)
    traces.add_argument("--to", type=Path, default=Path("traces.jsonl"), help="the JSON-lines file to write (default: traces.jsonl)")
    traces.set_defaults(handler=lambda a: handlers.sessions(a, handlers.traces))
    for action in (ls, show, export, traces):
        action.add_argument("--schema", default="harnesslab", help="PostgreSQL schema of the store")

    emulator = commands.add_parser("emulator", help="serve the Messages-API emulator until interrupted")
    emulator.add_argument("--host", default="127.0.0.1", help="loopback only, unless you mean it")
    emulator.add_argument("--port", type=int, default=8765)
    emulator.add_argument("--latency", type=Path, help="a latency profile YAML (see `harnesslab calibrate`)")
    emulator.add_argument("--faults", help="fault rates, e.g. rate_limit=0.05,overloaded=0.05,disconnect=0.02")
    emulator.add_argument("--loose", action="store_true", help="check only the request shapes it needs to answer, not "
                          "every rule of the API (see docs/emulator.md)")
    emulator.set_defaults(handler=handlers.emulator)

    serve = commands.add_parser("serve", help="serve the Managed Agents API (agents, environments, sessions) until interrupted")
    serve.add_argument("--port", type=int, default=8800)
    serve.add_argument("--environment-key", help="the key self-hosted environments' workers authenticate with (random if "
                       "not given)")
    serve.add_argument("overrides", nargs="*", help="Hydra overrides: the parts (model, sandbox, store, ...) and serve.* "
                       "(configs/serve/default.yaml)")
    serve.set_defaults(handler=handlers.serve)

    calibrate = commands.add_parser("calibrate", help="measure the API (or the emulator) and write a latency profile")
    calibrate.add_argument("--out", type=Path, default=Path("latency.yaml"))
    calibrate.add_argument("--model", default="claude-sonnet-4-6", help="the model to measure on the real API")
    calibrate.add_argument("--base-url", help="an endpoint other than the API (needs ANTHROPIC_API_KEY)")
    calibrate.add_argument("--sizes", default="200,2000,8000", help="prompt sizes in tokens, comma-separated")
    calibrate.add_argument("--repeats", type=int, default=5)
    calibrate.set_defaults(handler=handlers.calibrate)

    worker = commands.add_parser("worker", help="drive unfinished sessions of a shared store (with Hydra overrides)")
    worker.add_argument("--slot", default="w0", help="this worker's slot: a restarted worker keeps its slot")
    worker.add_argument("--forever", action="store_true", help="keep waiting for sessions instead of exiting when idle")
    worker.add_argument("--config", type=Path, help="a resolved config file to use instead of composing one (a fault run writes it)")
    worker.add_argument("--check", action="store_true", help="check each session this worker ends, in its sandbox; log the verdict")
    worker.add_argument("--acks", type=Path, help="record every append the store acknowledged in this file (fault runs check it)")
    faults = worker.add_argument_group("fault points (fault runs start workers with these; see experiments/faults/failpoints.py)")
    faults.add_argument("--crash-at", choices=POINTS, help="SIGKILL this worker at this point of its work")
    faults.add_argument("--crash-rate", type=float, default=0.2, help="the chance of crashing each time the point is passed")
    faults.add_argument("--sandbox-kills", type=int, default=0, help="destroy the sandbox a logged tool call goes to, until the log has this many")
    faults.add_argument("--sandbox-kill-rate", type=float, default=0.2, help="the chance for each tool call")
    faults.add_argument("--fault-log", type=Path, help="where faults injected here are recorded")
    faults.add_argument("--fault-seed", type=int, default=0, help="seeds this process's fault streams (fault points, the emulator's "
                        "errors): fault runs give each worker process its own")
    worker.add_argument("overrides", nargs="*", help="Hydra overrides; the store must be shared (store.path=... or a DSN)")
    worker.set_defaults(handler=handlers.worker)
    submit = commands.add_parser("submit", help="create the configured tasks' sessions in a shared store, for workers")
    submit.add_argument("overrides", nargs="*", help="Hydra overrides, as for run; the store must be shared")
    submit.set_defaults(handler=handlers.submit)
    collect = commands.add_parser("collect", help="one results.duckdb of every session in a shared store (checked by `worker --check`)")
    collect.add_argument("--out", type=Path, help="its folder (default: outputs/collect-<time>)")
    collect.add_argument("overrides", nargs="*", help="Hydra overrides naming the store, as for the workers")
    collect.set_defaults(handler=handlers.collect)

    report = commands.add_parser("report", help="what the runs of results files vary, and each section about them (TTFT, recovery, context, ...); writes plots")
    report.add_argument("path", type=Path, nargs="+", help="results.duckdb files or folders of them (runs, multiruns): one report over all")
    report.add_argument("--out", type=Path, help="where the PNGs go (default: PATH/report for one PATH; for several, a new folder under ./reports)")
    report.set_defaults(handler=handlers.report)

    docker = commands.add_parser("docker", help="the Docker engine and sandbox image").add_subparsers(metavar="ACTION", required=True)
    docker.add_parser("setup", help="start an engine (installing docker.io if needed) and build the image offline").set_defaults(
        handler=handlers.docker_setup)
    sandbox = commands.add_parser("sandbox", help="sandbox housekeeping").add_subparsers(metavar="ACTION", required=True)
    prune = sandbox.add_parser("prune", help="remove the harnesslab containers of runs that have ended (their owner process is gone)")
    prune.add_argument("--all", action="store_true", help="every harnesslab container, those of runs still going too")
    prune.set_defaults(handler=handlers.sandbox_prune)

    postgres = commands.add_parser("postgres", help="a throwaway local PostgreSQL server").add_subparsers(
        metavar="ACTION", required=True
    )
    start = postgres.add_parser("start", help="create (once) and start a cluster; prints its DSN")
    stop = postgres.add_parser("stop", help="stop the cluster")
    for action in (start, stop):
        action.add_argument("--dir", type=Path, default=Path(".harnesslab/postgres"), help="its data folder")
    start.add_argument("--port", type=int, default=55432)
    start.set_defaults(handler=handlers.postgres_start)
    stop.set_defaults(handler=handlers.postgres_stop)
    return top


def run(args: list[str], command: str = "run", job_function=None) -> int:
    """A Hydra job (or sweep, with -m) of `job_function(cfg, output_dir, choices)`, by default run_job."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from experiments.run.config_check import check_config

    if job_function is None:
        from experiments.run.job import run_job as job_function

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def job(cfg: DictConfig) -> None:
        runtime = HydraConfig.get().runtime
        try:
            check_config(cfg)
            job_function(cfg, Path(runtime.output_dir), dict(runtime.choices))
        except Exception as exc:  # Hydra would print a user's mistake with a traceback; SystemExit passes it by
            if not users_mistake(exc):
                raise
            print(f"harnesslab: {printable(str(exc))}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:  # the run has closed its parts by now: its sandboxes and temporary folders are gone
            print(f"harnesslab: interrupted; what it logged is in {runtime.output_dir}", file=sys.stderr)
            raise SystemExit(130) from None

    sys.argv = [f"harnesslab {command}", *args]
    job()
    return 0

