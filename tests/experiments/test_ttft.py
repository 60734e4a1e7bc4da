"""experiment=ttft_quick end to end: the sweep, `harnesslab report`, and notebooks/ttft.ipynb executed."""
from __future__ import annotations

import pytest

from experiments.results.tables import read_table
from tests.experiments.cli.test_cli import harnesslab
from tests.helpers import run_notebook


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    where = tmp_path_factory.mktemp("ttft")
    done = harnesslab("run", "-m", "experiment=ttft_quick", cwd=where)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("4/4 sessions succeeded") == 4
    assert "[harness=coupled sandbox=local] 1/4" in done.stderr  # progress per cell
    [folder] = list(where.glob("multirun/*/*"))
    return folder


@pytest.mark.slow
def test_the_report_states_the_measured_change_the_bound_of_provisioning_and_the_seeds_and_writes_plots(sweep):
    done = harnesslab("report", str(sweep), cwd=sweep)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "4 results file(s), 4 run(s), 16 sessions" in out and "TTFT of each user turn's first token, 16 turns" in out
    files = sorted(sweep.rglob("results.duckdb"))
    calls = read_table(files, "model_calls")
    turns = calls[calls["turn_ttft_ms"].notna()].merge(read_table(files, "sessions"), on=["run_id", "session_id"])
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()}
    for sandbox in ("local", "namespace"):
        coupled = turns[(turns["sandbox"] == sandbox) & (turns["harness"] == "coupled")]
        decoupled = turns.loc[(turns["sandbox"] == sandbox) & (turns["harness"] == "decoupled"), "turn_ttft_ms"]
        without_provisioning = coupled["turn_ttft_ms"] - coupled["provision_ms"]
        for quantile, q, seed in (("p50", 0.5, "-60%"), ("p95", 0.95, "-90%")):
            base = coupled["turn_ttft_ms"].quantile(q)
            measured, bound = decoupled.quantile(q) / base - 1, without_provisioning.quantile(q) / base - 1
            assert rows[(sandbox, quantile)][-3:] == [f"{measured:+.0%}", f"{bound:+.0%}", seed]
    assert not any(verdict in out for verdict in ("agrees", "smaller cut", "larger cut"))
    for plot in ("ttft_cdf.png", "ttft_breakdown.png"):
        assert (sweep / "report" / plot).stat().st_size > 10_000


@pytest.mark.slow
def test_the_notebook_runs_against_the_quick_results(sweep, tmp_path, monkeypatch):
    outputs = run_notebook("ttft.ipynb", sweep, tmp_path, monkeypatch)
    assert "4 results file(s)" in outputs
    for plot in ("notebook_ttft_cdf.png", "notebook_ttft_breakdown.png"):
        assert (tmp_path / plot).stat().st_size > 10_000


def test_report_names_a_path_without_results(tmp_path):
    done = harnesslab("report", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1 and "no results.duckdb at or under" in done.stderr
