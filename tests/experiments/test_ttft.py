"""experiment=ttft_quick end to end: the sweep, `harnesslab report`, and notebooks/ttft.ipynb executed."""
from __future__ import annotations

import pytest

from tests.experiments.test_cli import harnesslab
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
def test_the_report_compares_cells_with_the_seed_and_writes_plots(sweep):
    done = harnesslab("report", str(sweep), cwd=sweep)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "TTFT of each user turn's first token, 16 turns from 4 results file(s)" in out
    for sandbox in ("local", "namespace"):
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{sandbox}: decoupled vs coupled"))
        assert "(seed -60%:" in line and "(seed -90%:" in line and "provisioning is" in line
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
