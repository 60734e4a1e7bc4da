"""The one plain-list percentile agrees with pandas' quantile, which the reports use on tables."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from experiments.stats import percentile


@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [1.0, 2.0, 3.0, 4.0, 10.0], list(range(1, 21)), [0.5, 0.5, 9.0]])
@pytest.mark.parametrize("q", [0.0, 0.05, 0.5, 0.95, 0.99, 1.0])
def test_percentile_is_pandas_quantile(values, q):
    assert percentile(values, q) == pytest.approx(pd.Series(values).quantile(q))


def test_percentile_of_nothing_is_nan_and_q_outside_0_to_1_is_refused():
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError, match="q=95: expected a number from 0 to 1"):
        percentile([1.0], 95)
