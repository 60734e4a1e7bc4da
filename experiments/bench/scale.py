"""`make bench` (scale): `experiment=scale` — 1,000 concurrent sessions per cell, sqlite and postgres stores
by local and namespace hands, run side by side as one Hydra multirun, then its load table.

Needs PostgreSQL (HARNESSLAB_POSTGRES_DSN, or a throwaway local cluster started here) and bubblewrap.
`--quick`: 104 sessions per cell. The multirun stays in ./multirun for `harnesslab report`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from experiments.bench.targets import target
from experiments.paths import PROJECT_ROOT
from experiments.report.main import results_files
from experiments.report.load import load_section, load_table


def run_scale(quick: bool, sweep_dir: Path, dsn: str) -> list[Path]:
    overrides = ["tasks.repeat=13", "run.arrivals_per_s=26"] if quick else []
    command = [sys.executable, "-m", "experiments.cli", "run", "-m", "experiment=scale",
               f"hydra.sweep.dir={sweep_dir}", *overrides]
    subprocess.run(command, check=True, cwd=PROJECT_ROOT, env={**os.environ, "HARNESSLAB_POSTGRES_DSN": dsn},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return results_files(sweep_dir)


def main(quick: bool) -> None:
    import time

    from stores.postgres_server import LocalPostgres

    server, dsn = None, os.environ.get("HARNESSLAB_POSTGRES_DSN")
    if dsn is None:
        server = LocalPostgres()
        dsn = server.start()
    sweep_dir = PROJECT_ROOT / "multirun" / f"scale-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    print(f"scale (experiment=scale: {'104' if quick else '1,000'} sessions per cell, open-loop arrivals, "
          "model calls of seconds; emulator in its own process)")
    try:
        files = run_scale(quick, sweep_dir, dsn)
    finally:
        if server is not None:
            server.remove()
    print("\n".join(load_section(files, min_sessions=1)[1:]))  # its worst cell against the overhead and memory targets
    table = load_table(files)
    print(f"  {target('failed sessions, every cell', table['failed'].sum() if len(table) else None, '=', 0)}")
    print(f"  results: {sweep_dir}  (harnesslab report {sweep_dir})")
