"""The summary a run prints: input tokens counted whole (uncached + cache write + cache read, each named),
counts as integers, and sessions that did not complete named as failed."""
from __future__ import annotations

from experiments.run.job import compose_config, run_job
from experiments.results.tables import read_table

PARTS = {"uncached": "input_tokens", "cache write": "cache_write_tokens", "cache read": "cache_read_tokens"}


def test_the_summary_shows_every_input_token_integer_counts_and_failed_sessions(tmp_path, capsys):
    # find_needle takes 25 model calls: with 10 it fails; fix_bug passes in 4
    cfg = compose_config(["store=memory", "tasks.only=[fix_bug,find_needle]", "harness.max_turns=10"])
    results = run_job(cfg, tmp_path, {"harness": "decoupled", "sandbox": "local"})
    out = capsys.readouterr().out
    sessions, calls = read_table([results], "sessions"), read_table([results], "model_calls")
    parts = {name: int(calls[column].sum()) for name, column in PARTS.items()}
    assert all(parts.values()), parts  # the emulator's prompt cache is written and read
    named = " + ".join(f"{count} {name}" for name, count in parts.items())
    assert f"{sum(parts.values())} input tokens ({named}) / {int(calls['output_tokens'].sum())} output" in out

    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["fix_bug"], ["find_needle"])}
    for session in sessions.itertuples():
        row = rows[session.task]
        assert row[2:4] == [str(session.turns), str(session.tool_calls)]  # `4`, not `4.0`
        total = session.input_tokens + session.cache_write_tokens + session.cache_read_tokens
        assert row[-1] == f"{total}/{session.output_tokens}"

    assert (sessions["status"] == "failed").sum() == 1
    load = next(line for line in out.splitlines() if line.startswith("load: "))
    assert load.startswith("load: 2 sessions (") and ", 1 failed) in " in load and "error" not in load
    assert read_table([results], "load")["failed"].tolist() == [1]
