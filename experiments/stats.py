"""Statistics of plain lists of numbers, for code that has no DataFrame (benchmarks, a fault run's summary).

`percentile` interpolates linearly between the two nearest ranks, as pandas' `Series.quantile` and numpy's
`percentile` do by default, so a p95 a benchmark prints and one a report computes from a table agree.
"""
from __future__ import annotations

import math
from typing import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of `values`; nan if there are none."""
    if not 0 <= q <= 1:
        raise ValueError(f"percentile q={q!r}: expected a number from 0 to 1")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
