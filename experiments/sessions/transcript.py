"""A session log as a readable transcript, and a session list as a table.

Logged data may hold anything a sandbox printed or a model wrote, terminal control sequences too: everything
shown passes through `printable`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Callable

from harnesses.hands import DEFAULT_HAND
from stores import events as logged
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
    value = logged.typed(event)
    describe = _DESCRIBERS.get(type(value))
    if describe is not None:
        try:
            return describe(value)
        except (AttributeError, TypeError, ValueError):  # a field of an unexpected shape: shown as it is below
            pass
    return event.type, json.dumps(event.data, ensure_ascii=False)  # an unknown type or shape: shown, never dropped


def _response(r: logged.ModelResponse) -> tuple[str, str]:
    parts = []
    for block in r.content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            parts.append(f"→ {block.get('name')} {json.dumps(block.get('input'), ensure_ascii=False)}")
        elif block.get("type") == "thinking":
            parts.append(f"(thinking: {block.get('thinking') or '[omitted]'})")
        elif block.get("type") == "redacted_thinking":
            parts.append("(redacted thinking)")
        elif block.get("type") == "compaction":
            parts.append(f"(compaction: {block.get('content') or '[failed]'})")
    timing = f"[ttft {r.ttft_ms or 0:.1f} ms, {r.usage.get('input_tokens', 0)}/{r.usage.get('output_tokens', 0)} tokens]"
    return "assistant", f"{' '.join(parts)}  {timing}"


def _hand(hand_name: str | None, kind: str | None = None) -> str:
    """Where a call ran (a tool.call without a hand name ran in the harness or the proxy), or which hand a sandbox is:
    the session's hand and its kind, as far as the log says."""
    if hand_name is None:
        return kind or "?"
    return f"hand {hand_name}" + (f" ({kind})" if kind else "")


def _sandbox_hand(hand_name: str | None, kind: str | None = None) -> str:
    return _hand(hand_name or DEFAULT_HAND, kind)  # sandbox.* events that name no hand are about the default one


_DESCRIBERS: dict[type, Callable[[Any], tuple[str, str]]] = {
    logged.SessionCreated: lambda c: ("created", f"task {c.meta.get('task', '-')}, tools {c.meta.get('tools') or 'all'}"),
    logged.UserMessage: lambda m: ("user", m.text),
    logged.HarnessWoke: lambda w: ("harness", f"woke ({w.harness}, pid {w.pid} on {w.host})"),
    logged.ModelResponse: _response,
    logged.ToolCall: lambda c: (c.TYPE, f"{c.name} on {_hand(c.hand_name, c.hand)} [{c.tool_use_id}]"),
    logged.ToolResult: lambda r: (
        r.TYPE, f"{'ERROR' if r.is_error else 'ok'} ({r.duration_ms or 0:.1f} ms): {r.output}",
    ),
    logged.SandboxProvisioned: lambda p: (
        "sandbox", f"provisioned {p.sandbox_id} as {_sandbox_hand(p.hand_name, p.hand)} ({p.provision_ms or 0:.1f} ms)"),
    logged.SandboxLost: lambda lost: (
        "sandbox", f"LOST {lost.sandbox_id} ({_sandbox_hand(lost.hand_name, lost.hand)}): {lost.reason}"),
    logged.SandboxHanded: lambda h: ("sandbox", f"handed {h.sandbox_id} ({_sandbox_hand(h.hand_name)}) to session {h.to_session}"),
    logged.SandboxReceived: lambda r: (
        "sandbox", f"received {r.sandbox_id} as {_sandbox_hand(r.hand_name)} from session {r.from_session}"),
    logged.ContextCompacted: lambda c: ("compacted", f"positions [0, {c.to}) summarized: {c.summary}"),
    logged.TaskChecked: lambda c: ("checked", f"{'passed' if c.success else 'FAILED'} (by {c.worker} on {c.host}): {c.detail}"),
    logged.SessionCompleted: lambda end: ("completed", end.reason),
    logged.SessionFailed: lambda end: ("FAILED", end.reason),
}
