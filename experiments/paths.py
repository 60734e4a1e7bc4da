"""Where the project's own files are, and who may read what a run writes."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"
PRIVATE_UMASK = 0o077  # folders 0700, files 0600


def keep_outputs_private() -> None:
    """Make everything this process creates from now on (outputs/ and multirun/ folders, results.duckdb,
    sessions.sqlite, logs) readable by its owner alone, so a local sandbox's command, which runs as another
    uid on the same host, cannot read other runs' logs. Call it first, before Hydra makes the run's folder."""
    os.umask(PRIVATE_UMASK)
