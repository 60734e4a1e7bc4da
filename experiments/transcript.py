"""A session log as a readable transcript, and a session list as a table."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

from stores.base import Event, SessionInfo


def when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def clip(text: str, width: int) -> str:
    """One line of at most `width` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def session_table(infos: list[SessionInfo], where: str) -> str:
    """The sessions listed, and where they were read (`where`, in words)."""
    header = f"{'session':<32}  {'task':<22} {'status':<10} {'events':>6}  {'created':<19}  updated"
    rows = [
        f"{i.id:<32}  {clip(i.meta.get('task', '-'), 22):<22} {i.status:<10} {i.length:>6}  {when(i.created)}  {when(i.updated)}"
        for i in infos
    ]
    return "\n".join([header, *rows, f"{len(infos)} session(s) in {where}"])


def transcript(info: SessionInfo, events: list[Event], width: int = 100) -> str:
    meta = info.meta
    lines = [
        f"session {info.id} · task {meta.get('task', '-')} ({meta.get('suite', '-')}#{meta.get('instance', 0)}) · "
        f"{info.status} · {info.length} events · {when(info.created)}"
    ]
    for event in events:
        label, text = _describe(event)
        lines.append(f"  #{event.position:<4} {label:<12} {clip(text, width)}")
    return "\n".join(lines)


def _describe(event: Event) -> tuple[str, str]:
    describe = _DESCRIBERS.get(event.type)
    if describe is None:  # an unknown or newer type: shown as it is, never dropped
        return event.type, json.dumps(event.data, ensure_ascii=False)
    return describe(event.data)


def _response(d: dict[str, Any]) -> tuple[str, str]:
    parts = []
    for block in d.get("content", []):
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            parts.append(f"→ {block.get('name')} {json.dumps(block.get('input'), ensure_ascii=False)}")
    usage = d.get("usage", {})
    timing = f"[ttft {d.get('ttft_ms', 0):.1f} ms, {usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)} tokens]"
    return "assistant", f"{' '.join(parts)}  {timing}"


_DESCRIBERS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    "session.created": lambda d: ("created", f"task {d.get('task', '-')}, tools {d.get('tools') or 'all'}"),
    "user.message": lambda d: ("user", d.get("text", "")),
    "harness.woke": lambda d: ("harness", f"woke ({d.get('harness')}, pid {d.get('pid')} on {d.get('host')})"),
    "model.response": _response,
    "tool.call": lambda d: ("tool.call", f"{d.get('name')} on {d.get('hand')} [{d.get('tool_use_id')}]"),
    "tool.result": lambda d: (
        "tool.result",
        f"{'ERROR' if d.get('is_error') else 'ok'} ({d.get('duration_ms', 0):.1f} ms): {d.get('output', '')}",
    ),
    "sandbox.provisioned": lambda d: ("sandbox", f"provisioned {d.get('sandbox_id')} ({d.get('provision_ms', 0):.1f} ms)"),
    "sandbox.lost": lambda d: ("sandbox", f"LOST {d.get('sandbox_id')}: {d.get('reason')}"),
    "sandbox.handed": lambda d: ("sandbox", f"handed {d.get('sandbox_id')} to session {d.get('to')}"),
    "sandbox.received": lambda d: ("sandbox", f"received {d.get('sandbox_id')} from session {d.get('from')}"),
    "session.completed": lambda d: ("completed", d.get("reason", "")),
    "session.failed": lambda d: ("FAILED", d.get("reason", "")),
}
