"""A benchmark's target and whether a measurement met it: every target `make bench` prints goes through
`target`, so none is printed without its verdict.

Here rather than in harness.py: the report's load section prints targets too, and should not import the harness.
"""
from __future__ import annotations

import math
import operator

_COMPARISONS = {"<=": operator.le, ">=": operator.ge, "=": operator.eq}


def verdict(measured: float | None, op: str, bound: float) -> str:
    """'met', 'MISSED', or 'not measured' (no measurement, or NaN) for `measured op bound`."""
    if op not in _COMPARISONS:
        raise ValueError(f"comparison {op!r}: expected one of {', '.join(_COMPARISONS)}")
    if measured is None or math.isnan(measured):
        return "not measured"
    return "met" if _COMPARISONS[op](measured, bound) else "MISSED"


def target(what: str, measured: float | None, op: str, bound: float, unit: str = "") -> str:
    """'sqlite group commit, 64 sessions: 32,114 events/s (target >= 50,000 events/s: MISSED)'."""
    shown = "-" if measured is None or math.isnan(measured) else f"{number(measured)}{unit}"
    return f"{what}: {shown} (target {op} {number(bound)}{unit}: {verdict(measured, op, bound)})"


def number(value: float) -> str:
    """Thousands separated from 100 on, three significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"
