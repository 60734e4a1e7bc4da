"""The faults of `faults=` (configs/faults/): what each one breaks, for real, while workers run.

Each kind is seeded and they compose (`faults=[harness_kill,model_faults]`). The streams inside a
worker (its fault points, its emulator's errors) are seeded per (run, worker incarnation), see
`incarnation_seed`: a restarted worker draws a stream of its own, instead of replaying the start of
its predecessor's (frequent restarts would then never reach a fault).

A fault either acts from outside while the run goes on (`inject`, called `count` times at random
intervals), or changes how workers start (`worker_flags`: fault points inside the worker, see
failpoints.py; `configure_workers`); `rows_from_logs` finds the faults that only the session logs saw.
Every fault that happened becomes a row of the `faults` table, and only those are counted as injected.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from experiments.faults.failpoints import POINTS
from stores.base import Event
from stores.events import ModelResponse

if TYPE_CHECKING:
    from experiments.faults.lab import Lab


def mixed_seed(*parts: object) -> int:
    """One 64-bit seed from several: each combination of parts gets a stream of its own."""
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def incarnation_seed(run_seed: int, slot: str, incarnation: int) -> int:
    """The fault seed of a slot's n-th worker process in a run (`harnesslab worker --fault-seed`)."""
    return mixed_seed(run_seed, slot, incarnation)


@dataclass
class Fault:
    kind: ClassVar[str]
    count: int = 10  # faults to inject
    interval_s: tuple[float, float] = (0.05, 0.4)  # pause before each one, drawn uniformly

    def configure_workers(self, cfg: dict[str, Any]) -> None:
        """Change the workers' configuration (a plain dict) before they start."""

    def check(self, lab: Lab) -> None:
        """Raise ValueError if this fault has nothing to act on in `lab`."""

    def worker_flags(self) -> list[str]:
        """Extra `harnesslab worker` arguments for a worker process starting now."""
        return []

    @property
    def acts(self) -> bool:
        """Does it act from outside the workers (`inject`)?"""
        return False

    async def inject(self, lab: Lab, rng: random.Random) -> dict[str, Any] | None:
        """Inject one fault now; None if there is nothing to hit yet."""
        raise NotImplementedError

    def rows_from_logs(self, logs: Mapping[str, list[Event]]) -> list[dict[str, Any]]:
        return []


@dataclass
class HarnessKill(Fault):
    """SIGKILL a worker: at random moments from outside (`at: random`), or at a crash point."""

    kind = "harness_kill"
    at: str = "random"  # random | model_stream | tool_running | append
    rate: float = 0.2  # at a crash point: the chance of crashing each time a worker passes it

    def __post_init__(self) -> None:
        if self.at not in ("random", *POINTS):
            raise ValueError(f"faults.harness_kill.at={self.at!r}; valid: random, {', '.join(POINTS)}")

    def worker_flags(self) -> list[str]:
        return [] if self.at == "random" else ["--crash-at", self.at, "--crash-rate", str(self.rate)]

    @property
    def acts(self) -> bool:
        return self.at == "random"  # at a crash point the workers kill themselves; the supervisor sees each death

    async def inject(self, lab: Lab, rng: random.Random) -> dict[str, Any] | None:
        kill = lab.supervisor.kill_one(rng, min_ready_s=0.2)
        return None if kill is None else {"kind": self.kind, "target": kill.slot, "at": kill.at, "point": "random"}


@dataclass
class SandboxKill(Fault):
    """Destroy the sandbox a logged tool call is running in (workers do it: a tool call lasts milliseconds)."""

    kind = "sandbox_kill"
    rate: float = 0.2  # the chance for each tool call to be hit, until `count` were

    def worker_flags(self) -> list[str]:
        return ["--sandbox-kills", str(self.count), "--sandbox-kill-rate", str(self.rate)]


@dataclass
class StoreRestart(Fault):
    """Stop PostgreSQL (`immediate` is a crash: no shutdown checkpoint), wait `down_s`, start it again."""

    kind = "store_restart"
    interval_s: tuple[float, float] = (1.0, 3.0)
    down_s: float = 0.5
    mode: str = "immediate"

    @property
    def acts(self) -> bool:
        return True

    def check(self, lab: Lab) -> None:
        if lab.store_server is None:
            raise ValueError(f"faults.store_restart restarts the server the workers' store runs on, and "
                             f"{type(lab.store).__name__} runs on none of the run's own: use store=postgres")

    async def inject(self, lab: Lab, rng: random.Random) -> dict[str, Any] | None:
        at = time.time()
        await asyncio.to_thread(lab.store_server.stop, self.mode)
        await asyncio.sleep(self.down_s)
        await asyncio.to_thread(lab.store_server.start)
        return {"kind": self.kind, "target": "postgres", "at": at, "point": self.mode, "back_at": time.time()}


@dataclass
class ModelFaults(Fault):
    """Per-request error rates of the emulator (429, 529, 500, streams cut); the harness's retries absorb them."""

    kind = "model_faults"
    count: int = 0  # not injected from outside: the rates decide
    rate_limit: float = 0.05
    overloaded: float = 0.05
    server_error: float = 0.0
    disconnect: float = 0.05

    def configure_workers(self, cfg: dict[str, Any]) -> None:
        if "faults" not in cfg["model"]:
            raise ValueError(f"faults.model_faults sets the emulator's error rates, but model {cfg['model']['_target_']} "
                             "has none: use model=emulator")
        cfg["model"]["faults"].update(rate_limit=self.rate_limit, overloaded=self.overloaded,
                                      server_error=self.server_error, disconnect=self.disconnect)

    def rows_from_logs(self, logs: Mapping[str, list[Event]]) -> list[dict[str, Any]]:
        """Each failed attempt a logged answer records, and when that answer was logged (what the sessions
        saw: the attempts of a call its worker died in are in no log, and not counted)."""
        return [
            {"kind": self.kind, "target": retry.get("error"), "at": retry["at"], "point": "model_call",
             "session_id": session_id, "recovered_after_ms": (event.ts - retry["at"]) * 1000, "sessions_held": 1}
            for session_id, events in logs.items() for event in events if event.type == ModelResponse.TYPE
            for retry in ModelResponse.read(event).retries if "at" in retry
        ]


KINDS: dict[str, type[Fault]] = {kind.kind: kind for kind in (HarnessKill, SandboxKill, StoreRestart, ModelFaults)}


def faults_from_config(section: Mapping[str, Mapping[str, Any]] | None) -> list[Fault]:
    """The faults of the `faults` config section, each from its own file of configs/faults/."""
    faults = []
    for name, options in (section or {}).items():
        if name not in KINDS:
            raise ValueError(f"faults.{name}: no such fault; valid: {', '.join(KINDS)}")
        options = dict(options or {})
        if "interval_s" in options:
            options["interval_s"] = tuple(options["interval_s"])
        try:
            faults.append(KINDS[name](**options))
        except TypeError as exc:
            raise ValueError(f"faults.{name}: {exc}") from None
    return faults
