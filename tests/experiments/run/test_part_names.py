"""A part plugged in by `_target_` is recorded and reported under the name it declares, or its import path:
never under the name of the option it replaced."""
from __future__ import annotations

import json
import os

import pytest

from experiments.run.job import compose_config, run_job
from experiments.run.parts import recorded_choices
from experiments.paths import PROJECT_ROOT
from experiments.results.tables import read_table
from tests.experiments.cli.test_cli import harnesslab

CUSTOM = "tests.experiments.run.custom_parts"
ON_PATH = {"PYTHONPATH": str(PROJECT_ROOT)}  # the user's own package, importable by the run
QUICK = ["model=scripted", "store=memory", "tasks.only=[greeting,fix_bug]"]


@pytest.mark.slow
def test_a_sweep_over_two_custom_harnesses_records_and_reports_each_under_its_own_name(tmp_path):
    plain = f"{CUSTOM}.PlainHarness"
    done = harnesslab("run", "-m", f"harness._target_={CUSTOM}.NamedHarness,{plain}", *QUICK, cwd=tmp_path, env=ON_PATH)
    assert done.returncode == 0, done.stderr
    assert "harnesslab run · harness=named model=scripted" in done.stdout
    assert f"harnesslab run · harness={plain} model=scripted" in done.stdout
    [sweep] = tmp_path.glob("multirun/*/*")
    files = sorted(sweep.rglob("results.duckdb"))
    sessions = read_table(files, "sessions")
    assert sorted(set(sessions["harness"])) == ["named", plain] and set(sessions["context"]) == {"full"}
    assert sorted(json.loads(c)["harness"] for c in read_table(files, "runs")["choices"]) == ["named", plain]
    reported = harnesslab("report", str(sweep), cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    rows = [line for line in reported.stdout.splitlines() if "named" in line or plain in line]
    assert any("named" in row and plain not in row for row in rows) and any(plain in row for row in rows), reported.stdout


def test_a_context_plugged_in_by_target_is_recorded_under_its_import_path_in_header_sessions_and_choices(tmp_path, capsys):
    cfg = compose_config([f"context._target_={CUSTOM}.CountingContext", *QUICK])
    hydra_choices = {"harness": "decoupled", "model": "scripted", "sandbox": "local", "store": "memory", "context": "full",
                     "tasks": "smoke"}
    results = run_job(cfg, tmp_path, hydra_choices)
    header = capsys.readouterr().out.splitlines()[0]
    assert header == (f"harnesslab run · harness=decoupled model=scripted sandbox=local store=memory "
                      f"context={CUSTOM}.CountingContext tasks=smoke faults=none")
    assert set(read_table([results], "sessions")["context"]) == {f"{CUSTOM}.CountingContext"}
    assert json.loads(read_table([results], "runs")["choices"][0])["context"] == f"{CUSTOM}.CountingContext"


def test_a_shipped_part_keeps_its_option_name_and_a_named_class_is_recorded_under_its_name():
    cfg = compose_config(["store=memory", "sandbox=docker_pool", "harness._target_=harnesses.coupled.CoupledHarness"])
    names = recorded_choices(cfg, {"harness": "decoupled", "sandbox": "docker_pool", "store": "memory"})
    assert names["sandbox"] == "docker_pool" and names["store"] == "memory"
    assert names["harness"] == "coupled"  # what runs, not the option it replaced
    assert recorded_choices(cfg, {})["context"] == "full"  # no choice given: the one option with that target


@pytest.mark.parametrize("module_text, target, expected", [
    (None, "mypkg_nowhere.contexts.MyContext",
     "cannot import module 'mypkg_nowhere.contexts' (No module named 'mypkg_nowhere')"),
    ("import a_dependency_not_installed\n", "broken_parts.MyContext",
     "importing module 'broken_parts' failed: No module named 'a_dependency_not_installed'"),
    ("raise RuntimeError('boom at import')\n", "broken_parts.MyContext",
     "importing module 'broken_parts' failed: RuntimeError: boom at import"),
    ("X = 1\n", "broken_parts.MyContext", "module 'broken_parts' has no 'MyContext'"),
])
def test_a_target_that_cannot_be_imported_names_the_module_and_the_error(tmp_path, module_text, target, expected):
    if module_text is not None:
        (tmp_path / "broken_parts.py").write_text(module_text)
    on_path = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)])}
    done = harnesslab("run", f"context._target_={target}", *QUICK, cwd=tmp_path, env=on_path)
    assert done.returncode != 0
    assert f"harnesslab: context._target_='{target}': {expected}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Error locating target" not in done.stderr
    assert not list(tmp_path.glob("outputs/**/results.duckdb"))
