"""The docs' worker example (docs/reference.md), run as it is written (only its /tmp paths moved): `collect` checks the
sessions no worker checked, where their hands are, and scores them right."""
from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest

from experiments.paths import PROJECT_ROOT
from experiments.results.tables import read_table
from tests.experiments.cli.test_cli import harnesslab


def documented_worker_example() -> list[list[str]]:
    """The commands of the docs' first block under "Workers and failure recovery" (docs/reference.md)."""
    section = (PROJECT_ROOT / "docs" / "reference.md").read_text().split("## Workers and failure recovery", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


@pytest.fixture
def scratch():
    """A folder under /tmp, as in the docs (a sandbox's own user must be able to pass through to its root)."""
    folder = Path(tempfile.mkdtemp(prefix="harnesslab-example-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def moved(command: list[str], scratch: Path) -> list[str]:
    return [arg.replace("/tmp/", f"{scratch}/") for arg in command]


@pytest.mark.slow
def test_the_documented_worker_example_scores_every_session_it_ran(scratch, tmp_path):
    commands = documented_worker_example()
    assert [c[:2] for c in commands] == [["harnesslab", "submit"], ["harnesslab", "worker"], ["harnesslab", "collect"]]
    assert "--check" not in commands[1]  # the worker checks nothing: collect has to
    for command in commands:
        done = harnesslab(*moved(command, scratch)[1:], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    submitted = int(re.search(r"tasks.repeat=(\d+)", " ".join(commands[0])).group(1)) * 10  # ten smoke tasks
    assert f"{submitted}/{submitted} sessions succeeded" in done.stdout, done.stdout
    assert "harnesslab collect · store=sqlite" in done.stdout and "store=?" not in done.stdout
    [results] = tmp_path.glob("results/*/results.duckdb")
    assert read_table([results], "sessions")["success"].all()
    events = read_table([results], "events")
    assert (events["type"] == "task.checked").sum() == submitted


def test_collect_says_why_a_session_was_not_checked_and_what_to_do(scratch, tmp_path):
    store, hands = f"store.path={scratch / 'lab.sqlite'}", f"sandbox.root={scratch / 'hands'}"
    tasks = "tasks.only=[fix_bug]"
    assert harnesslab("submit", store, tasks, "tasks.repeat=2", cwd=tmp_path).returncode == 0
    assert harnesslab("worker", store, hands, "sandbox.keep=true", tasks, "tasks.repeat=2", cwd=tmp_path).returncode == 0
    elsewhere = harnesslab("collect", store, tasks, "--out", str(tmp_path / "elsewhere"), cwd=tmp_path)  # not its hands
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "0/2 sessions succeeded" in elsewhere.stdout and "not checked: no sandbox to check it in here" in elsewhere.stdout
    assert "or start the workers with --check" in elsewhere.stdout
    here = harnesslab("collect", store, hands, tasks, "--out", str(tmp_path / "here"), cwd=tmp_path)
    assert "2/2 sessions succeeded" in here.stdout, here.stdout  # instance 1 found without tasks.repeat=2
    again = harnesslab("collect", store, tasks, "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert "2/2 sessions succeeded" in again.stdout, again.stdout  # the verdicts were logged: no hands needed now
