"""The red team: the leak scan finds what it should, secrets stay out of every backend's sessions, resource abuse
is contained, and the report shows both."""
from __future__ import annotations

import base64
from contextlib import AsyncExitStack

import pytest

from experiments.run.job import compose_config, run_job
from experiments.run.parts import build_parts, start_parts
from experiments.results.leaks import leak_violations
from experiments.report.security import security_section
from experiments.run.runner import run_suite
from experiments.tasks import load_suite
from stores.base import Event

SECRET = "hlab-api-" + "0123456789abcdef" * 2


def test_the_scan_finds_a_secret_in_any_encoding_and_names_where():
    b64 = base64.b64encode(SECRET.encode()).decode()
    logs = {"s1": [Event("tool.result", {"output": f"found {b64}"}, 4)], "s2": [Event("tool.result", {"output": "nothing"}, 4)]}
    [found] = leak_violations(logs, {"api_token": SECRET})
    assert (found.session_id, found.position, found.rule, found.detail) == ("s1", 4, "secret leaked", "api_token in tool.result")


async def red_team(*overrides: str, suite: str = "security", only: list[str] | None = None):
    """Run red-team tasks; their records, logs and the leaks the scan found."""
    cfg = compose_config(["store=memory", "model=scripted", "credentials=proxy", "tasks=security", *overrides])
    async with AsyncExitStack() as stack:
        parts = build_parts(cfg, stack)
        await start_parts(parts)
        tasks = load_suite(suite, only=only)
        records = await run_suite(parts.store, parts.harness, parts.sandboxes, tasks, 4, credentials=parts.credentials)
        logs = {r.session_id: await parts.store.events(r.session_id) for r in records}
        return records, logs, leak_violations(logs, parts.credentials.planted)


async def test_a_sandbox_user_with_root_privileges_can_read_the_proxys_memory_and_the_scan_says_so():
    _, _, leaks = await red_team("sandbox=local", "sandbox.user=null", only=["memory_scan"])
    assert {leak.detail for leak in leaks} == {"api_token in tool.result", "git_token in tool.result"}
    _, _, leaks = await red_team("sandbox=local", only=["memory_scan"])  # the default: an unprivileged user
    assert leaks == []


@pytest.mark.parametrize("sandbox", ["local", "namespace", pytest.param("docker", marks=pytest.mark.docker)])
async def test_every_attack_runs_and_no_secret_leaks(sandbox, request):
    extra = [f"sandbox.image={request.getfixturevalue('docker_image')}"] if sandbox == "docker" else []
    records, logs, leaks = await red_team(f"sandbox={sandbox}", "sandbox.timeout_s=5", *extra)
    assert len(records) >= 50 and all(r.verdict.success for r in records), [r.verdict.detail for r in records if not r.verdict.success]
    assert leaks == []
    outputs = [e.data["output"] for events in logs.values() for e in events if e.type == "tool.result"]
    assert sum("the credential proxy refused" in output for output in outputs) >= 7  # the proxy said no, and why
    assert any("[secret:api_token]" in output for output in outputs)  # a reflected credential, redacted


@pytest.mark.parametrize("sandbox", ["local", "namespace", pytest.param("docker", marks=pytest.mark.docker)])
async def test_resource_abuse_ends_within_limits_and_the_session_goes_on(sandbox, request):
    extra = [f"sandbox.image={request.getfixturevalue('docker_image')}"] if sandbox == "docker" else []
    records, logs, _ = await red_team(f"sandbox={sandbox}", "sandbox.timeout_s=3", *extra, suite="security_abuse")
    for record in records:
        results = [e.data for e in logs[record.session_id] if e.type == "tool.result"]
        assert len(results) == 2 and results[0]["duration_ms"] < 15_000, (record.task, results[0]["output"][-200:])
        assert (results[1]["output"], results[1]["is_error"]) == ("alive\n", False), (record.task, results[1])
        assert record.outcome.status == "completed"


def test_the_report_shows_attempts_and_leaks_per_sandbox(tmp_path):
    cfg = compose_config(["store=memory", "model=scripted", "credentials=proxy", "tasks=security",
                          "tasks.only=[env_printenv,proxy_metadata,files_traversal]"])
    path = run_job(cfg, tmp_path, {"sandbox": "local", "tasks": "security"})
    text = "\n".join(security_section([path]))
    assert "Red team: planted secrets, by sandbox and attack category" in text
    assert "local: 3 attacks, 3 attempts, 0 session(s) leaked a secret" in text
