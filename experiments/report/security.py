"""The security part of `harnesslab report`: red-team runs (suites security and security_abuse), per sandbox.

Exfiltration, per sandbox and attack category: attacks, tool calls they made, how those ended (ok, an error,
a refusal by the credential proxy) and the sessions in which a planted secret was found (the run scans every
event of every session: `secret leaked` violations). Resource abuse, per sandbox and attack: how long the
abusive call ran, how it ended, and whether the session's next call still worked (contained).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.results.leaks import RULE
from experiments.results.tables import read_table
from stores.base import Event
from stores.events import ToolResult

SUITES = ("security", "security_abuse")
REFUSED = "the credential proxy refused"


def security_tables(files: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Red-team sessions (with their leaks) and their tool results (with outputs); empty without any."""
    sessions = read_table(files, "sessions")
    red = sessions[sessions["suite"].isin(SUITES)].copy()
    if red.empty:
        return red, pd.DataFrame()
    violations = read_table(files, "violations")
    leaked = violations[violations["rule"] == RULE].groupby(["run_id", "session_id"]).size().rename("leaks")
    red = red.join(leaked, on=["run_id", "session_id"]).fillna({"leaks": 0})
    events = read_table(files, "events")
    results = events[events["type"] == ToolResult.TYPE].merge(red[["run_id", "session_id", "sandbox", "suite", "task"]],
                                                             on=["run_id", "session_id"])
    logged = [ToolResult.read(Event(ToolResult.TYPE, json.loads(row.data), v=row.v)) for row in results.itertuples()]
    results["output"], results["is_error"] = [r.output for r in logged], [bool(r.is_error) for r in logged]
    results["duration_ms"] = [r.duration_ms or 0.0 for r in logged]
    return red, results.sort_values(["run_id", "session_id", "position"])


def exfiltration(red: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    attacks = red[red["suite"] == "security"].assign(category=lambda f: f["task"].str.split("_").str[0])
    calls = results[results["suite"] == "security"].assign(
        category=lambda f: f["task"].str.split("_").str[0], refused=lambda f: f["output"].str.startswith(REFUSED))
    table = attacks.groupby(["sandbox", "category"]).agg(attacks=("task", "size"), leaked_sessions=("leaks", lambda s: int((s > 0).sum())))
    ended = calls.groupby(["sandbox", "category"]).agg(calls=("task", "size"), errors=("is_error", "sum"), refused=("refused", "sum"))
    return table.join(ended).fillna(0).astype(int).reset_index()


def abuse(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (sandbox, task, _), calls in results[results["suite"] == "security_abuse"].groupby(["sandbox", "task", "session_id"]):
        attack, after = calls.iloc[0], calls.iloc[1] if len(calls) > 1 else None
        rows.append({
            "sandbox": sandbox, "attack": task, "ran_s": round(attack["duration_ms"] / 1000, 1),
            "ended": "error" if attack["is_error"] else "ok", "how": " ".join(attack["output"].split())[-60:],
            "contained": after is not None and not after["is_error"] and after["output"].strip() == "alive",
        })
    return pd.DataFrame(rows)


def security_section(files: list[Path]) -> list[str]:
    red, results = security_tables(files)
    if red.empty:
        return []
    lines = ["", "Red team: planted secrets, by sandbox and attack category (every event of every session is scanned)"]
    table = exfiltration(red, results)
    if not table.empty:
        lines.append(table.to_string(index=False))
        totals = table.groupby("sandbox")[["attacks", "calls", "leaked_sessions"]].sum()
        lines += [f"  {sandbox}: {row.attacks} attacks, {row.calls} attempts, {row.leaked_sessions} session(s) leaked a secret"
                  for sandbox, row in totals.iterrows()]
    abused = abuse(results)
    if not abused.empty:
        lines += ["", "Resource abuse: the abusive call, and whether the session's next call still worked",
                  abused.to_string(index=False)]
    return lines
