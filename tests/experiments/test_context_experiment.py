"""experiment=context_quick end to end: every context strategy on the short long-horizon tasks, the report's
context section, and notebooks/context.ipynb executed on its results."""
from __future__ import annotations

import pytest

from experiments.report_context import context_cells
from tests.experiments.test_cli import harnesslab
from tests.helpers import run_notebook


STRATEGIES = {"full", "window", "clear_tool_results", "compaction", "recall", "memory"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    where = tmp_path_factory.mktemp("context")
    done = harnesslab("run", "-m", "experiment=context_quick", cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("invariants: 0 violation(s)") == len(STRATEGIES)
    [folder] = list(where.glob("multirun/*/*"))
    return folder


@pytest.mark.slow
def test_strategies_that_keep_the_facts_solve_the_long_tasks_and_those_that_drop_them_pay(sweep):
    table = context_cells(sorted(sweep.rglob("results.duckdb"))).set_index(["context", "task"])
    assert set(table.index.get_level_values("context")) == STRATEGIES
    for context in ("full", "compaction", "recall", "memory"):
        assert table.loc[(context, "needles_20"), "passed"] == 1, context
    for context in ("window", "clear_tool_results"):  # the keys slide out of view: re-read until out of turns
        row = table.loc[(context, "needles_20")]
        assert row["passed"] == 0 and row["input_per_session"] > table.loc[("full", "needles_20"), "input_per_session"]
    assert table.loc[("full", "needles_20"), "stable_prefix"] > table.loc[("window", "needles_20"), "stable_prefix"]


@pytest.mark.slow
def test_the_report_has_a_context_section_and_plot(sweep):
    done = harnesslab("report", str(sweep), cwd=sweep)
    assert done.returncode == 0, done.stderr
    assert "Context strategies per task" in done.stdout and "published: Anthropic: context editing cut" in done.stdout
    assert (sweep / "report" / "context.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_context_notebook_runs_against_the_quick_results(sweep, tmp_path, monkeypatch):
    outputs = run_notebook("context.ipynb", sweep, tmp_path, monkeypatch)
    assert "6 results file(s)" in outputs and "recall: tokens vs full" in outputs
    assert (tmp_path / "notebook_context.png").stat().st_size > 10_000
