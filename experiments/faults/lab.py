"""What the faults of a run act on (its workers' supervisor, the store they share, PostgreSQL to restart), and
the files of the run's folder it is checked with afterwards (acknowledged events, self-injected faults, the
side-effect journal)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.workers.supervisor import Supervisor
from sandboxes.base import SandboxProvider
from stores.base import SessionStore

JOURNAL = "journal.jsonl"  # the side-effect journal, in the run's folder


@dataclass
class Lab:
    """What the faults act on, and what the run is checked with."""

    folder: Path
    store: SessionStore  # the driver's own connection to the shared store
    sandboxes: SandboxProvider  # the driver's handle on the workers' sandboxes
    store_server: Any  # the server of the run's own the store runs on (WorkerStore.server: PostgreSQL), or None
    supervisor: Supervisor | None = None
    preload: tuple[str, ...] = ()  # modules every worker imports before it is ready

    @property
    def acks(self) -> Path:
        return self.folder / "acks.jsonl"

    @property
    def fault_log(self) -> Path:
        """Faults the workers injected into themselves."""
        return self.folder / "faults.jsonl"

    @property
    def journal(self) -> Path:
        return self.folder / JOURNAL
