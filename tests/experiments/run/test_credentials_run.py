"""`credentials=proxy tasks=credentials` end to end on every sandbox backend: the tasks pass, and no planted
secret reaches the sandbox, the session log, the results or the proxy's audit log."""
from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from experiments.results.save import save_run, utc_now
from experiments.run.job import compose_config
from experiments.run.parts import build_parts, start_parts
from experiments.results.schema import SCHEMA
from experiments.results.tables import read_table
from experiments.run.runner import run_suite
from experiments.tasks import load_suite


@pytest.mark.parametrize("sandbox", ["local", "namespace", pytest.param("docker", marks=pytest.mark.docker)])
async def test_credentialed_tasks_pass_and_no_planted_secret_reaches_any_output(sandbox, tmp_path, request):
    overrides = ["store=memory", "model=scripted", "credentials=proxy", "tasks=credentials", f"sandbox={sandbox}"]
    if sandbox == "docker":
        overrides.append(f"sandbox.image={request.getfixturevalue('docker_image')}")
    cfg = compose_config(overrides)
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack)
        await start_parts(parts)
        records = await run_suite(parts.store, parts.harness, parts.sandboxes, load_suite("credentials"), 2, credentials=parts.credentials)
        logs = {r.session_id: await parts.store.events(r.session_id) for r in records}
        planted, audit = dict(parts.credentials.planted), Path(parts.credentials.audit).read_text()
    assert [r.verdict.success for r in records] == [True, True], [r.verdict.detail for r in records]
    assert all("grep -rl hlab-" in r.verdict.detail for r in records)  # the workspace was searched for the secrets
    saved = save_run(cfg, tmp_path, {"sandbox": sandbox}, utc_now(), records, logs)
    results = "".join(read_table([saved.path], table).to_json(date_format="iso") for table in SCHEMA)
    everything = json.dumps([[e.type, e.data] for events in logs.values() for e in events]) + results + audit
    assert {name: value in everything for name, value in planted.items()} == {"api_token": False, "git_token": False}
    proxied = [e.data for events in logs.values() for e in events if e.type == "tool.call" and e.data["hand"] == "proxy"]
    assert [call["name"] for call in proxied] == ["http_request"]  # git_clone ran at setup, outside the session's tools
