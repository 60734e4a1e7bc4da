"""What the notebooks under notebooks/ share: which sweep they analyse, its tables, and where their figures go.

A notebook is about one experiment (`ttft`, `context`, `recovery`; its `_quick` version counts too) and analyses
one sweep of it: a folder `harnesslab run -m` wrote, marked by Hydra's multirun.yaml. By default that is the
newest (by the runs' recorded start) whose runs recorded that experiment in `runs.choices`, under the project's
multirun/. HARNESSLAB_RESULTS names another: a sweep folder, a run folder or a results.duckdb (taken as is), or a
folder of sweeps (the newest of the experiment in it is taken).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from experiments.paths import PROJECT_ROOT
from stores.archive import attach_read_only

MULTIRUN = PROJECT_ROOT / "multirun"
SWEEP_MARK = "multirun.yaml"  # Hydra writes it into every sweep folder
RESULTS_FILE = "results.duckdb"
HOW_TO_CHOOSE = "to analyse another, set HARNESSLAB_RESULTS (or RESULTS in the parameters cell) to a sweep folder or a results.duckdb"


class NoSweep(LookupError):
    """Nothing to analyse; the message says what to run. Shown in a notebook without a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is displayed
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class Sweep:
    """The results files a notebook analyses, what their runs recorded, and why they were chosen."""

    folder: Path
    files: list[Path]
    experiments: set[str] = field(default_factory=set)  # runs.choices["experiment"] of its runs
    started: dt.datetime | None = None  # its first run's start (UTC)
    why: str = ""

    def __str__(self) -> str:
        recorded = ", ".join(f"experiment={name}" for name in sorted(self.experiments)) or "no experiment recorded"
        started = f", started {self.started:%Y-%m-%d %H:%M:%S} UTC" if self.started else ""
        return (f"Analysing {self.folder}: {recorded}, {len(self.files)} results file(s){started}.\n"
                f"Why this one: {self.why}.\n({HOW_TO_CHOOSE}.)")


def choose_sweep(experiment: str, results: str | Path | None = None, multirun: Path = MULTIRUN) -> Sweep:
    """The sweep a notebook about `experiment` analyses: `results` if it names one, else the newest under `multirun`."""
    if results is None:
        return newest_sweep(experiment, multirun)
    path = Path(results).expanduser()
    if not path.exists():
        raise NoSweep(f"HARNESSLAB_RESULTS={results}: no such file or folder; {HOW_TO_CHOOSE}")
    if path.is_dir() and not (path / SWEEP_MARK).exists() and any(path.rglob(SWEEP_MARK)):
        return newest_sweep(experiment, path)
    files = [path] if path.is_file() else sorted(path.rglob(RESULTS_FILE))
    if not files:
        raise NoSweep(f"HARNESSLAB_RESULTS={results}: no {RESULTS_FILE} at or under it; {make_one(experiment)}")
    sweep = recorded(path if path.is_dir() else path.parent, files)
    why = "HARNESSLAB_RESULTS names it"
    if not ours(sweep, experiment):
        why += f" (note: its runs did not record experiment={experiment}, so some cells may not apply)"
    return replace(sweep, why=why)


def newest_sweep(experiment: str, root: Path) -> Sweep:
    sweeps = [recorded(mark.parent, sorted(mark.parent.rglob(RESULTS_FILE))) for mark in root.rglob(SWEEP_MARK)]
    sweeps = [sweep for sweep in sweeps if sweep.files]
    mine = [sweep for sweep in sweeps if ours(sweep, experiment)]
    if not mine:
        others = sorted({name for sweep in sweeps for name in sweep.experiments})
        seen = f"{len(sweeps)} sweep(s), of experiment(s) {', '.join(others) or 'none recorded'}" if sweeps else "no sweep"
        where = root if root.exists() else f"{root} (it does not exist yet)"
        raise NoSweep(f"no sweep of experiment={experiment} under {where}: {seen}. {make_one(experiment)}")
    newest = max(mine, key=lambda sweep: (sweep.started or dt.datetime.min, str(sweep.folder)))
    why = (f"the newest (by its runs' recorded start) of {len(mine)} sweep(s) of experiment={experiment} or "
           f"{experiment}_quick under {root}; "
           f"{len(sweeps) - len(mine)} sweep(s) of other experiments left out")
    return replace(newest, why=why)


def ours(sweep: Sweep, experiment: str) -> bool:
    """Whether the sweep's runs recorded `experiment` or its minute-sized version."""
    return bool(sweep.experiments & {experiment, f"{experiment}_quick"})


def make_one(experiment: str) -> str:
    return (f"Make one from the project root with `harnesslab run -m experiment={experiment}_quick` (a minute-sized "
            f"version) or `harnesslab run -m experiment={experiment}`")


def recorded(folder: Path, files: list[Path]) -> Sweep:
    """`files` as a Sweep, with the experiments and start their runs recorded."""
    experiments, starts = set(), []
    if files:
        with open_results(files) as con:
            for choices, started in con.execute("SELECT choices, started FROM runs").fetchall():
                experiments.add((json.loads(choices) if choices else {}).get("experiment"))
                starts.append(started)
    experiments.discard(None)
    return Sweep(folder, files, experiments, min(filter(None, starts), default=None))


def open_results(files: list[Path]) -> Any:
    """A DuckDB connection with one view per table over every one of `files` that has it (`FROM sessions`, ...)."""
    import duckdb

    con = duckdb.connect()
    names = attach_read_only(con, files)
    found = con.execute(
        "SELECT table_name, list(table_catalog ORDER BY table_catalog) FROM information_schema.tables"
        f" WHERE table_catalog IN ({', '.join('?' for _ in names)}) GROUP BY table_name", names).fetchall()
    for table, catalogs in found:
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM {catalog}.{table}" for catalog in catalogs)
        con.execute(f"CREATE TEMP VIEW {table} AS {union}")
    return con


def save_figure(fig: Any, name: str, plots: str | Path | None) -> None:
    """Also write `fig` as PNG `name` into the folder `plots` (created if missing), if one is given."""
    if not plots:
        return
    path = Path(plots).expanduser() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")
