"""A session log as a readable transcript, and a session list as a table.

Logged data may hold anything a sandbox printed or a model wrote, terminal control sequences too: everything
shown passes through `printable`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Callable

from stores.base import Event, SessionInfo

# C0 controls but newline and tab, DEL, C1 controls: every byte that starts or is a terminal control (ESC begins
# CSI cursor moves and OSC sequences such as OSC 52 clipboard writes; 0x9b and 0x9d are CSI and OSC on their own)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character but newline and tab shown as its escape (ESC as `\\x1b`), so that
    printing it to a terminal cannot move the cursor, rewrite lines, ring, set the clipboard or change the title."""
    return _CONTROLS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def when(ts: float) -> str:
    try:
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, TypeError, ValueError):  # not a time (a damaged or foreign log): shown as it is
        return str(ts)


def clip(text: str, width: int) -> str:
    """One printable line of at most `width` characters."""
    flat = " ".join(printable(str(text)).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def gaps(events: list[Event], length: int) -> list[tuple[int, int]]:
    """(first, last) of each run of positions in [0, length) that `events`, a log read in order, lacks."""
    found, expected = [], 0
    for position in [e.position for e in events] + [length]:
        if position > expected:
            found.append((expected, position - 1))
        expected = max(expected, position + 1)
    return found


def session_table(infos: list[SessionInfo], where: str) -> str:
    """The sessions listed, and where they were read (`where`, in words)."""
    header = f"{'session':<32}  {'task':<22} {'status':<10} {'events':>6}  {'created':<19}  updated"
    rows = [
        f"{i.id:<32}  {clip(i.meta.get('task', '-'), 22):<22} {i.status:<10} {i.length:>6}  {when(i.created)}  {when(i.updated)}"
        for i in infos
    ]
    return printable("\n".join([header, *rows, f"{len(infos)} session(s) in {where}"]))


def transcript(info: SessionInfo, events: list[Event], width: int = 100) -> str:
    """The header, then a line per event; a gap in the log's positions is said in the header and where it is."""
    meta, missing = info.meta, gaps(events, info.length)
    lines = [
        f"session {info.id} · task {meta.get('task', '-')} ({meta.get('suite', '-')}#{meta.get('instance', 0)}) · "
        f"{info.status} · {info.length} events · {when(info.created)}"
        + (f" · GAP: {_positions(missing)} missing from the log" if missing else "")
    ]
    shown = [(e.position, *_describe(e)) for e in events]
    shown += [(first, "MISSING", f"{_positions([(first, last)])}: the log has no event there") for first, last in missing]
    for position, label, text in sorted(shown, key=lambda line: line[0]):
        lines.append(f"  #{position:<4} {label:<12} {clip(text, width)}")
    return printable("\n".join(lines))


def _positions(runs: list[tuple[int, int]]) -> str:
    return "positions " + ", ".join(f"{first}" if first == last else f"{first}-{last}" for first, last in runs)


def _describe(event: Event) -> tuple[str, str]:
    describe = _DESCRIBERS.get(event.type)
    if describe is not None:
        try:
            return describe(event.data)
        except (AttributeError, TypeError, ValueError):  # a field of an unexpected shape: shown as it is below
            pass
    return event.type, json.dumps(event.data, ensure_ascii=False)  # an unknown type or shape: shown, never dropped


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
