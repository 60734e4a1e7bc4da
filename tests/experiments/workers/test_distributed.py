"""Workers as on several machines sharing one PostgreSQL store: each its own process, slot and sandbox folder
(none can reach another's hands). They share out the submitted sessions, check the ones they end where
their hands are, and `harnesslab collect` writes one results.duckdb from the shared logs."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from experiments.results.tables import read_table
from stores.postgres import PostgresStore
from tests.experiments.cli.test_cli import HARNESSLAB, harnesslab

TASKS = ["tasks.only=[greeting,fix_bug,count_rows,edit_json]", "tasks.repeat=3"]


@pytest.mark.postgres
@pytest.mark.slow
async def test_workers_on_three_machines_share_the_sessions_check_them_and_one_collect_covers_all(postgres_dsn, tmp_path):
    shared = ["store=postgres", f"store.schema=dist_{uuid.uuid4().hex[:8]}"]
    env = {"HARNESSLAB_POSTGRES_DSN": postgres_dsn}
    done = harnesslab("submit", *shared, *TASKS, cwd=tmp_path, env=env)
    assert done.returncode == 0 and "submitted 12 session(s)" in done.stdout, done.stderr
    machines = []
    for host in ("alpha", "beta", "gamma"):
        (tmp_path / host).mkdir()
        command = [HARNESSLAB, "worker", "--slot", f"{host}-0", "--check", *shared, *TASKS, "run.concurrency=2",
                   f"sandbox.root={tmp_path / host / 'hands'}"]
        machines.append(subprocess.Popen(command, cwd=tmp_path / host, env={**__import__("os").environ, **env},
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for worker in machines:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err

    store = PostgresStore(postgres_dsn, schema=shared[1].split("=")[1])
    logs = {info.id: await store.events(info.id) for info in await store.sessions()}
    await store.close()
    assert len(logs) == 12
    drivers = {}
    for session_id, events in logs.items():
        woke = [e.data["worker"] for e in events if e.type == "harness.woke"]
        [checked] = [e.data for e in events if e.type == "task.checked"]
        assert checked["worker"] == woke[-1] and checked["success"], (session_id, checked)
        drivers[session_id] = woke[-1]
    assert len(set(drivers.values())) >= 2  # the work was shared out

    done = harnesslab("collect", *shared, "--out", str(tmp_path / "collected"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "12/12 sessions succeeded" in done.stdout
    sessions = read_table([tmp_path / "collected" / "results.duckdb"], "sessions")
    assert len(sessions) == 12 and sessions["success"].all() and set(sessions["status"]) == {"completed"}


async def test_collect_names_sessions_no_worker_checked(tmp_path):
    path = tmp_path / "lab.sqlite"
    assert harnesslab("submit", f"store.path={path}", "tasks.only=[greeting]", cwd=tmp_path).returncode == 0
    done = harnesslab("collect", f"store.path={path}", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "0/1 sessions succeeded" in done.stdout and "not checked: the session has not ended" in done.stdout
