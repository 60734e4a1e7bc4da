"""What a run cost the machine: wall and CPU time, peak memory, and the throughput it reached.

Every run writes one `load` row. With model calls' `overhead_ms` (from the event that made a call due to
its request leaving) and `server_ttft_ms` (the TTFT the emulator chose), it is what `experiment=scale` reports.
"""
from __future__ import annotations

import gc
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class LoadMeter:
    """Wall and CPU time between `start()` and `stop()`; how many sessions were in flight at most."""

    started: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    in_flight: int = 0
    peak_sessions: int = 0
    model_server_rss_mb: float | None = None  # a model server of the run's own, in its own process (the emulator)
    model_server_cpu_s: float | None = None
    _cpu: float = field(default=0.0, repr=False)

    def start(self) -> None:
        self.started, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall_s, self.cpu_s = time.perf_counter() - self.started, time.process_time() - self._cpu

    def session_started(self) -> None:
        self.in_flight += 1
        self.peak_sessions = max(self.peak_sessions, self.in_flight)

    def session_ended(self) -> None:
        self.in_flight -= 1

    def row(self, tables: dict[str, list[dict[str, Any]]], concurrency: int, arrivals_per_s: float | None) -> dict[str, Any]:
        sessions = tables["sessions"]
        calls = len(tables["model_calls"])
        return {
            "sessions": len(sessions), "completed": sum(s["status"] == "completed" for s in sessions),
            "failed": sum(s["status"] != "completed" for s in sessions), "model_calls": calls,
            "tool_calls": len(tables["tool_calls"]), "wall_s": self.wall_s, "cpu_s": self.cpu_s,
            "turns_per_s": calls / self.wall_s if self.wall_s else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # kilobytes on Linux
            "model_server_rss_mb": self.model_server_rss_mb, "model_server_cpu_s": self.model_server_cpu_s,
            "concurrency": concurrency, "arrivals_per_s": arrivals_per_s, "peak_sessions": self.peak_sessions,
        }


def load_line(row: dict[str, Any], overhead_ms: Any) -> str:
    """One line for a run's summary; `overhead_ms`: the model calls' overhead (a pandas Series)."""
    overhead = "-" if overhead_ms.dropna().empty else (
        f"{overhead_ms.quantile(0.5):.1f} / {overhead_ms.quantile(0.95):.1f} ms")
    return (f"load: {row['sessions']} sessions ({row['peak_sessions']} at once at most, {row['failed']} failed) in "
            f"{row['wall_s']:.1f} s, {row['turns_per_s'] or 0:.1f} model calls/s · harness overhead per call p50 / p95 "
            f"{overhead} · CPU {row['cpu_s']:.1f} s · peak RSS {row['peak_rss_mb']:.0f} MB" + (
                f" (model server: {row['model_server_rss_mb']:.0f} MB, CPU {row['model_server_cpu_s']:.1f} s)"
                if row["model_server_rss_mb"] else ""))


@contextmanager
def startup_frozen() -> Iterator[None]:
    """While sessions run, keep what the process holds before them (modules, clients, the parts) out of the
    cyclic collector's scans: with 1,000 sessions in flight, a full collection walking it all paused the event
    loop for 180-350 ms, and every session waiting on the loop waited that long. Unfrozen after, so a process
    that runs several jobs (tests, a sequential multirun) collects their leftovers as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
