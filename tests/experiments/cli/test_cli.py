"""`harnesslab run` end to end, as a user runs it: a subprocess in a fresh directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.results.schema import SCHEMA
from experiments.results.tables import read_table

HARNESSLAB = str(Path(sys.executable).with_name("harnesslab"))


def harnesslab(*args: str, cwd: Path, env: dict | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it; `timeout_s` only bounds a hang (runs take a fraction of it, more on a loaded machine)."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([HARNESSLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s, env=environment)


@pytest.mark.slow
def test_default_run_succeeds_and_fills_every_table(tmp_path):
    done = harnesslab("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "10/10 sessions succeeded" in done.stdout
    assert "harness=decoupled model=emulator sandbox=local store=sqlite context=full tasks=smoke" in done.stdout
    assert "HTTP Request" not in done.stdout + done.stderr  # client libraries stay quiet
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    assert f"results: {results}" in done.stdout
    assert (results.parent / "sessions.sqlite").exists()
    tables = {name: read_table([results], name) for name in SCHEMA}
    filled = [name for name in SCHEMA if name != "violations"]
    assert {name: len(tables[name]) > 0 for name in filled} == {name: True for name in filled}
    assert tables["violations"].empty and "invariants: 0 violation(s) in 10 session log(s)" in done.stdout
    sessions = tables["sessions"]
    assert len(sessions) == 10 and sessions["success"].all()
    assert sessions["turns"].sum() == len(tables["model_calls"])
    assert sessions["tool_calls"].sum() == len(tables["tool_calls"])
    assert sessions["events"].sum() == len(tables["events"])
    run = tables["runs"].iloc[0]
    assert json.loads(run["choices"])["store"] == "sqlite"
    assert json.loads(run["config"])["run"]["concurrency"] == 8
    assert set(tables["tool_calls"]["hand"]) == {"local"}


@pytest.mark.slow
def test_multirun_writes_one_results_file_per_job(tmp_path):
    done = harnesslab("run", "-m", "store=memory,sqlite", "tasks.only=[greeting,arithmetic]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted(tmp_path.glob("multirun/*/*/*/results.duckdb"))
    assert len(files) == 2
    sessions = read_table(files, "sessions")
    assert sorted(sessions["store"]) == ["memory", "memory", "sqlite", "sqlite"]
    assert sessions["success"].all()


def test_a_wrong_option_fails_with_the_valid_ones(tmp_path):
    done = harnesslab("run", "store=postgress", cwd=tmp_path)
    assert done.returncode != 0
    assert "Could not find 'store/postgress'" in done.stderr and "memory" in done.stderr and "sqlite" in done.stderr
    assert not list(tmp_path.glob("outputs/**/results.duckdb"))


def test_an_unknown_command_is_named(tmp_path):
    done = harnesslab("runn", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'runn' (choose from 'run', 'replay', 'fork', 'sessions', 'emulator', 'serve', 'calibrate', 'worker', 'submit', 'collect', 'report', 'docker', 'sandbox', 'postgres')" in done.stderr
    assert harnesslab("--help", cwd=tmp_path).stdout.startswith("usage: harnesslab")


@pytest.mark.slow
def test_a_standalone_emulator_serves_a_run_through_model_anthropic(tmp_path):
    from stores.postgres_server import free_loopback_port

    port = free_loopback_port()
    server = subprocess.Popen([HARNESSLAB, "emulator", "--port", str(port), "--faults", "overloaded=0.1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"emulator on http://127.0.0.1:{port}" in server.stdout.readline()
        done = harnesslab("run", "model=anthropic", f"model.base_url=http://127.0.0.1:{port}", "tasks.only=[fix_bug]",
                          "model.backoff_base_s=0.01", cwd=tmp_path, env={"ANTHROPIC_API_KEY": "stand-in"})
        assert done.returncode == 0 and "1/1 sessions succeeded" in done.stdout, done.stderr
    finally:
        server.terminate()
        server.wait(10)
    bad = harnesslab("emulator", "--faults", "meteor=1", cwd=tmp_path)
    assert bad.returncode == 2 and "valid names: rate_limit, overloaded" in bad.stderr


@pytest.mark.slow
@pytest.mark.docker
def test_every_smoke_task_succeeds_in_docker_sandboxes(tmp_path, docker_image):
    done = harnesslab("run", "sandbox=docker", "store=memory", cwd=tmp_path)
    assert done.returncode == 0 and "10/10 sessions succeeded" in done.stdout, done.stdout + done.stderr
    assert "sandbox=docker" in done.stdout


@pytest.mark.slow
def test_replay_and_fork_a_logged_session_from_the_command_line(tmp_path):
    assert harnesslab("run", "tasks.only=[fix_bug]", cwd=tmp_path).returncode == 0
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    session = read_table([results], "sessions")["session_id"][0]
    replayed = harnesslab("replay", session[:8], "--from", str(results), "context=recall", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert "harnesslab replay · harness=decoupled model=replay sandbox=local store=sqlite context=recall" in replayed.stdout
    assert "tool results compared with the log: 3, diverged: 0\n  first divergence: none" in replayed.stdout
    [replay_results] = set(tmp_path.glob("outputs/*/*/results.duckdb")) - {results}
    assert read_table([replay_results], "sessions")["success"].all()
    assert read_table([replay_results], "divergences").empty
    forked = harnesslab("fork", session[:8], "--from", str(results), "--at", "3", "context=compaction", cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    assert f"fork of session {session} (smoke/fix_bug#0)" in forked.stdout and "1/1 sessions succeeded" in forked.stdout
    wrong = harnesslab("fork", session[:8], "--from", str(results), "--at", "99", cwd=tmp_path)
    assert wrong.returncode == 1 and f"--at 99: session {session} holds positions 0..14" in wrong.stderr


@pytest.mark.slow
def test_secrets_given_to_a_run_reach_the_proxy_and_no_output_of_the_run(tmp_path):
    from_env, from_file = "hlab-env-" + "5" * 32, "hlab-file-" + "6" * 32
    (tmp_path / "secrets.env").write_text(f"file_token={from_file}\n")
    done = harnesslab("run", "credentials=proxy", "tasks=security", f"credentials.secrets_file={tmp_path / 'secrets.env'}",
                      "tasks.only=[env_all_procs,env_printenv,env_parent,fs_tmp,proxy_reflect,harness_outputs]", cwd=tmp_path,
                      env={"HARNESSLAB_SECRET_ENV_TOKEN": from_env})
    assert done.returncode == 0, done.stderr
    assert "secrets: api_token, env_token, file_token, git_token" in done.stderr and "0 violation(s)" in done.stdout
    [results] = tmp_path.glob("outputs/*/*/results.duckdb")
    written = [p.read_bytes().decode(errors="replace") for p in results.parent.rglob("*") if p.is_file() and p.suffix != ".duckdb"]
    tables = [read_table([results], table).to_json(date_format="iso") for table in SCHEMA]
    assert "proxy-audit.jsonl" in {p.name for p in results.parent.iterdir()}
    for text in [done.stdout, done.stderr, *written, *tables]:
        assert from_env not in text and from_file not in text


@pytest.mark.slow
def test_sweeps_on_the_joblib_and_submitit_launchers_and_one_report_over_both(tmp_path):
    sweep = ["store=memory", "tasks.only=[greeting,count_rows]", "context=full,window"]
    for launcher in ("joblib", "submitit_local"):
        done = harnesslab("run", "-m", f"hydra/launcher={launcher}", *sweep, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    sweeps = sorted(tmp_path.glob("multirun/*/*"))
    assert len(sweeps) == 2 and all(len(list(s.glob("*/results.duckdb"))) == 2 for s in sweeps)
    assert (sweeps[1] / ".submitit").is_dir()  # the submitit executor ran those jobs
    reported = harnesslab("report", *map(str, sweeps), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert "4 results file(s), 4 run(s), 8 sessions; varying context: full, window" in reported.stdout, reported.stdout
