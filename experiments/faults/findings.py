"""What a run under faults found: one row per fault with its recovery time, and the totals.

Recovery time is from the fault to the next event that shows the session(s) moving again:
- harness_kill: the next harness.woke on a session the killed worker held (also: since its successor was ready);
- sandbox_kill: the session's new hands (sandbox.provisioned);
- store_restart: the first event any session wrote after the restart (also: since the store was back);
- model_faults: the model.response that followed the failed attempt (the harness's retries).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from experiments.faults.acks import LostEvent
from experiments.results.invariants import Violation
from experiments.results.schema import FAULTS_TABLE
from experiments.run.runner import SessionRecord
from experiments.stats import percentile
from experiments.workers.supervisor import Supervisor
from stores.base import TERMINAL_TYPES, Event
from stores.events import HarnessWoke, SandboxLost, SandboxProvisioned, SessionFailed

Logs = Mapping[str, list[Event]]


@dataclass
class Recovery:
    asked: list[str] = field(default_factory=list)  # the kinds the run was configured with (its cell)
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per fault that happened: what was injected
    sessions: int = 0
    completed: int = 0
    succeeded: int = 0
    failed_checks: dict[str, str] = field(default_factory=dict)  # session id -> why its check failed
    acked: int = 0  # acknowledged events checked against the store afterwards
    lost: list[LostEvent] = field(default_factory=list)
    duplicates: list[tuple[str, str, int]] = field(default_factory=list)  # (idempotency key, tool, starts) of non-idempotent tools
    reruns: int = 0  # idempotent tool calls started again after a crash (allowed)
    reruns_allowed: bool = False  # the harness's interrupted policy was `rerun`: duplicates are its choice

    @property
    def duplicate_effects(self) -> int:
        """Extra starts of non-idempotent tool calls, from the side-effect journal."""
        return sum(starts - 1 for _, _, starts in self.duplicates)

    def violations(self) -> list[Violation]:
        """Acknowledged events missing, and non-idempotent tools run twice when the policy did not allow it."""
        found = [Violation(e.session_id, e.position, "acknowledged events are kept", e.detail) for e in self.lost]
        if not self.reruns_allowed:
            found += [Violation(key.rpartition(":")[0], None, "non-idempotent tools run once",
                                f"{tool} call {key.rpartition(':')[2]} started {starts} times (side-effect journal)")
                      for key, tool, starts in self.duplicates]
        return found

    @property
    def injected(self) -> dict[str, int]:
        """Faults that happened, per kind: every kind asked for (0 if none happened), then any other."""
        counts = collections.Counter(r["kind"] for r in self.rows)
        return {kind: counts[kind] for kind in [*self.asked, *sorted(set(counts) - set(self.asked))]}

    def table_row(self) -> dict[str, Any]:
        return {"faults": "+".join(self.asked) or "none", "sessions": self.sessions, "completed": self.completed,
                "succeeded": self.succeeded, "injected": len(self.rows), "injected_by_kind": self.injected_text(),
                "acked_events": self.acked, "lost_events": len(self.lost), "duplicate_effects": self.duplicate_effects,
                "reruns": self.reruns}

    def injected_text(self) -> str:
        """E.g. `harness_kill 20, model_faults 0`."""
        return ", ".join(f"{kind} {n}" for kind, n in self.injected.items())

    @property
    def unnoticed(self) -> set[str]:
        """Sessions that ended before noticing their hands were killed (the work in them went too)."""
        return {r["session_id"] for r in self.rows if r["kind"] == "sandbox_kill" and not r["noticed"]}

    def add_sessions(self, records: Iterable[SessionRecord]) -> None:
        for r in records:
            self.sessions += 1
            self.completed += r.outcome.status == "completed"
            self.succeeded += r.verdict.success
            if not r.verdict.success:
                self.failed_checks[r.session_id] = f"{r.task}#{r.instance}: {r.verdict.detail}"

    def summary(self) -> str:
        lines = [
            f"faults injected: {len(self.rows)}" + (f" ({self.injected_text()})" if self.injected else "")
            + f"; asked for: {', '.join(self.asked) or 'none'}",
            f"sessions: {self.completed}/{self.sessions} completed, {self.succeeded}/{self.sessions} passed their check"
            + (f"; {len(self.unnoticed)} ended before noticing their hands were killed" if self.unnoticed else ""),
            f"acknowledged events: {self.acked} checked, {len(self.lost)} lost",
            f"side-effect journal: {self.duplicate_effects} duplicate start(s) of non-idempotent tools, "
            f"{self.reruns} re-run(s) of idempotent ones (allowed)",
        ]
        for kind in self.injected:
            lines.append(self._kind_line(kind, [r for r in self.rows if r["kind"] == kind]))
        lines += [f"  lost: {event}" for event in self.lost[:10]]
        lines += [f"  check failed: {why[:240]}" for why in list(self.failed_checks.values())[:10]]
        return "\n".join(lines)

    @staticmethod
    def _kind_line(kind: str, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return f"  {kind}: 0: asked for, but none happened"
        return (f"  {kind}: {len(rows)}, recovered after {spread(r['recovered_after_ms'] for r in rows)}"
                + (f", {spread(r.get('since_ready_ms') for r in rows)} after the replacement was ready"
                   if any(r.get("since_ready_ms") is not None for r in rows) else ""))


def spread(values: Iterable[float | None]) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return "n/a"
    p50, p95 = percentile(found, 0.5), percentile(found, 0.95)
    return f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"


def harness_kill_rows(supervisor: Supervisor, logs: Logs, point: str) -> list[dict[str, Any]]:
    rows = []
    for kill in supervisor.kills:
        resumed = [t for t in (_held_and_resumed(events, kill.slot, kill.at) for events in logs.values()) if t is not None]
        ready = min((t for slot, t in supervisor.readies if slot == kill.slot and t > kill.at), default=None)
        first = min(resumed, default=None)
        rows.append({
            "kind": "harness_kill", "point": "random" if kill.by_supervisor else point, "target": kill.slot, "at": kill.at,
            "sessions_held": len(resumed), "noticed": True,
            "recovered_after_ms": (first - kill.at) * 1000 if first else None,
            "since_ready_ms": (first - ready) * 1000 if first and ready and first >= ready else None,
        })
    return rows


def _held_and_resumed(events: list[Event], slot: str, at: float) -> float | None:
    """If `slot` was driving this session at `at`: when a harness next woke on it."""
    before = [e for e in events if e.ts <= at]
    woke = HarnessWoke.all_in(before)
    if not woke or woke[-1].worker != slot or any(e.type in TERMINAL_TYPES for e in before):
        return None
    return next((e.ts for e in events if e.ts > at and e.type == HarnessWoke.TYPE), None)


def sandbox_kill_rows(kills: list[dict[str, Any]], logs: Logs) -> list[dict[str, Any]]:
    """Did the session notice its hands were gone (new hands, or it failed), and how soon did it get new ones?"""
    rows = []
    for kill in kills:
        after = [e for e in logs[kill["session_id"]] if e.ts > kill["at"]]
        replaced = next((e.ts for e in after if e.type == SandboxProvisioned.TYPE), None)
        noticed = any(e.type in (SandboxLost.TYPE, SessionFailed.TYPE, SandboxProvisioned.TYPE) for e in after)
        rows.append({**kill, "sessions_held": 1, "noticed": noticed, "since_ready_ms": None,
                     "recovered_after_ms": (replaced - kill["at"]) * 1000 if replaced else None})
    return rows


def store_restart_rows(restarts: list[dict[str, Any]], logs: Logs) -> list[dict[str, Any]]:
    rows = []
    for restart in restarts:
        first = min((e.ts for events in logs.values() for e in events if e.ts > restart["back_at"]), default=None)
        rows.append({
            **{k: v for k, v in restart.items() if k != "back_at"}, "sessions_held": None, "noticed": True,
            "recovered_after_ms": (first - restart["at"]) * 1000 if first else None,
            "since_ready_ms": (first - restart["back_at"]) * 1000 if first else None,
        })
    return rows


def fault_rows(recovery: Recovery, run_id: str) -> list[dict[str, Any]]:
    return [{**{c: row.get(c) for c in FAULTS_TABLE}, "run_id": run_id} for row in recovery.rows]
