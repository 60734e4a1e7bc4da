"""experiment=context_quick end to end: every context strategy, client-side and server-side, on the short long-horizon
tasks and two windows, the report's context section, and notebooks/context.ipynb executed on its results."""
from __future__ import annotations

import pytest

from experiments.report.context import context_cells
from experiments.results.tables import read_table
from tests.experiments.cli.test_cli import harnesslab
from tests.helpers import run_notebook


STRATEGIES = {"full", "window", "clear_tool_results", "compaction", "recall", "memory", "server_clear", "server_compaction",
              "memory_tool"}
MODELS = ("claude-emulated", "claude-emulated-6k")  # the sweep's model.model: 200k and 6k windows
WIDE = MODELS[0]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    where = tmp_path_factory.mktemp("context")
    done = harnesslab("run", "-m", "experiment=context_quick", cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("invariants: 0 violation(s)") == len(STRATEGIES) * len(MODELS)
    [folder] = list(where.glob("multirun/*/*"))
    return folder


@pytest.mark.slow
def test_strategies_that_keep_the_facts_solve_the_long_tasks_and_those_that_drop_them_pay(sweep):
    table = context_cells(sorted(sweep.rglob("results.duckdb"))).set_index(["context", "model", "task"])
    assert set(table.index.get_level_values("context")) == STRATEGIES
    assert set(table.index.get_level_values("model")) == set(MODELS)
    for context in ("full", "compaction", "recall", "memory", "server_compaction", "memory_tool"):
        assert table.loc[(context, WIDE, "needles_20"), "passed"] == 1, context
    for context in ("window", "clear_tool_results", "server_clear"):  # the keys slide out of view: re-read until out of turns
        row = table.loc[(context, WIDE, "needles_20")]
        assert row["passed"] == 0 and row["input_per_session"] > table.loc[("full", WIDE, "needles_20"), "input_per_session"]
    assert table.loc[("full", WIDE, "needles_20"), "stable_prefix"] > table.loc[("window", WIDE, "needles_20"), "stable_prefix"]
    assert table.loc[("full", MODELS[1], "needles_20"), "passed"] == 0  # the whole log outgrows 6k: the API's 400


@pytest.mark.slow
def test_the_report_has_a_context_section_and_plot(sweep):
    done = harnesslab("report", str(sweep), cwd=sweep)
    assert done.returncode == 0, done.stderr
    assert "Context strategies per task" in done.stdout and "published: Anthropic: context editing cut" in done.stdout
    assert (sweep / "report" / "context.png").stat().st_size > 10_000
    # a sweep of context strategies has no coupled vs decoupled TTFT to compare
    assert "TTFT of each" not in done.stdout and not (sweep / "report" / "ttft_cdf.png").exists()


@pytest.mark.slow
def test_the_report_says_why_its_results_differ_from_the_published_ones(sweep):
    done = harnesslab("report", str(sweep), cwd=sweep)
    files = sorted(sweep.rglob("results.duckdb"))
    table = context_cells(files).set_index(["context", "model", "task"])
    change = table.loc[("clear_tool_results", WIDE, "needles_20"), "tokens vs full %"]
    published = next(line for line in done.stdout.splitlines() if "published: Anthropic" in line)
    assert f"clear_tool_results needles_20 ({WIDE}) {change:+.0f} %" in published
    assert "full on claude-emulated-6k 1" in next(line for line in done.stdout.splitlines() if "refused with a 400" in line)
    calls = read_table(files, "model_calls").merge(read_table(files, "sessions")[["run_id", "session_id", "context"]],
                                                   on=["run_id", "session_id"])
    calls["input"] = calls["input_tokens"] + calls["cache_read_tokens"] + calls["cache_write_tokens"]
    largest, whole_log = calls["input"].max(), calls.loc[calls["context"] == "full", "input"].max()
    assert whole_log < 200_000  # these logs fit Claude's window: why dropping context saves nothing here
    assert f"the largest context a call sent here: {largest:,} tokens" in done.stdout
    assert f"{largest / 200_000:.1%} of Claude's 200,000-token window" in done.stdout
    assert f"the whole log (full) peaked at {whole_log:,} tokens: on these tasks it fits the window" in done.stdout


@pytest.mark.slow
def test_the_context_notebook_runs_against_the_quick_results(sweep, tmp_path, monkeypatch):
    outputs = run_notebook("context.ipynb", sweep, tmp_path, monkeypatch)
    assert f"{len(STRATEGIES) * len(MODELS)} results file(s)" in outputs and "recall: tokens vs full" in outputs
    assert (tmp_path / "notebook_context.png").stat().st_size > 10_000
