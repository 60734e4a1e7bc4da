"""The credential proxy and its test services, as real processes on loopback: grants, refusals, redaction, clones."""
from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pytest
import pytest_asyncio

from sandboxes.credentials.client import ProxyClient, SessionCredentials
from sandboxes.credentials.lab import CredentialLab

API = {"credentials": {"tools": ["http_request"], "targets": ["api"]}}
EVERYTHING = {"credentials": {"tools": ["http_request", "git_clone"], "targets": ["api", "git"]}}
pytestmark = pytest.mark.asyncio(loop_scope="module")  # one proxy for the module, and its clients on one loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory):
    lab = CredentialLab(audit=str(tmp_path_factory.mktemp("proxy") / "audit.jsonl"))
    await lab.start()
    await lab.grant("alice", EVERYTHING)
    await lab.grant("bob", API)
    yield lab
    await lab.close()


def audit(lab: CredentialLab) -> list[dict]:
    return [json.loads(line) for line in Path(lab.audit).read_text().splitlines()]


def leaked(lab: CredentialLab, text: str) -> list[str]:
    return [name for name, value in lab.planted.items() if value in text]


async def test_a_granted_request_reaches_the_service_with_a_credential_the_session_never_sees(lab):
    result = await lab.credentials.run_tool("http_request", {"url": "http://api.lab/v1/whoami"}, "alice")
    assert not result.is_error and result.output.startswith("HTTP 200 OK\n") and '"user": "harnesslab"' in result.output
    echoed = await lab.credentials.run_tool("http_request", {"url": "http://api.lab/v1/headers"}, "alice")
    assert '"Authorization": "Bearer [secret:api_token]"' in echoed.output  # the service reflected it; the proxy redacted it
    assert leaked(lab, result.output + echoed.output) == []


@pytest.mark.parametrize("url, why", [
    ("http://169.254.169.254/latest/meta-data", "is not allowlisted for this session; http_request may reach: http://api.lab"),
    ("http://git.lab/demo.git/info/refs", "is not allowlisted"),  # a service, but not one for http_request or bob
    ("http://user:pass@api.lab/v1/whoami", "is not allowlisted"),
    ("http://api.lab:8080/v1/whoami", "is not allowlisted"),
    ("https://api.lab/v1/whoami", "is not allowlisted"),
    ("file:///etc/passwd", "is not allowlisted"),
])
async def test_targets_outside_the_allowlist_are_refused_and_logged(lab, url, why):
    result = await lab.credentials.run_tool("http_request", {"url": url}, "bob")
    assert result.is_error and "the credential proxy refused: target" in result.output and why in result.output
    last = audit(lab)[-1]
    assert (last["session_id"], last["outcome"], last["target"]) == ("bob", "refused", url)


async def test_dot_segments_stay_inside_the_service(lab):
    result = await lab.credentials.run_tool("http_request", {"url": "http://api.lab/v1/../../../etc/passwd"}, "alice")
    assert result.output.startswith("HTTP 404")  # /etc/passwd of the service, which has none: not the proxy's host


async def test_a_capability_allows_only_its_tools_and_none_is_no_capability(lab):
    other = await lab.credentials.run_tool("git_clone", {"url": "http://git.lab/demo.git"}, "bob")
    assert other.is_error and "this session's capability does not allow git_clone; it allows http_request" in other.output
    client = ProxyClient(lab.proxy_url)
    try:
        for capability in (None, "cap_" + "0" * 48, "Bearer nonsense"):
            refused = await client.call(capability, "http_request", {"url": "http://api.lab/v1/whoami"})
            assert refused.is_error and "no valid capability" in refused.output
        with pytest.raises(PermissionError, match="grants need the proxy's admin token"):
            await client.grant("not-the-admin-token", "mallory", ["http_request"], ["api"])
        with pytest.raises(PermissionError, match=r"unknown services \['vault'\]; the proxy knows \['api', 'git'\]"):
            await client.grant(lab._admin_token, "mallory", ["http_request"], ["vault"])
    finally:
        await client.close()
    unheld = SessionCredentials(ProxyClient(lab.proxy_url))
    assert "this session was granted no credentials" in (await unheld.run_tool("http_request", {"url": "http://api.lab/"}, "eve")).output
    assert [e["outcome"] for e in audit(lab)[-5:]] == ["refused"] * 5


async def test_bad_tool_input_is_named(lab):
    result = await lab.credentials.run_tool("http_request", {"url": "http://api.lab/v1/whoami", "method": "TRACE"}, "alice")
    assert result.is_error and "'TRACE' is not one of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']" in result.output


async def test_a_clone_comes_back_without_credentials_and_with_the_public_remote(lab, tmp_path):
    result = await lab.credentials.run_tool("git_clone", {"url": "http://git.lab/demo.git"}, "alice")
    assert not result.is_error
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(result.output))) as archive:
        archive.extractall(tmp_path, filter="data")
    assert (tmp_path / "VERSION").read_text() == "1.4.2\n"
    assert 'url = http://git.lab/demo.git' in (tmp_path / ".git" / "config").read_text()
    everything = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert not [name for name, value in lab.planted.items() if value.encode() in everything]
    wrong = await lab.credentials.run_tool("git_clone", {"url": "http://git.lab/missing.git"}, "alice")
    assert wrong.is_error and "git clone failed" in wrong.output and leaked(lab, wrong.output) == []


async def test_secrets_are_not_in_any_process_arguments_or_environment(lab):
    for pid in (lab.proxy_pid, *(child.pid for child in lab._children)):
        for part in ("cmdline", "environ"):
            text = Path(f"/proc/{pid}/{part}").read_bytes().decode(errors="replace")
            assert leaked(lab, text) == [], f"/proc/{pid}/{part}"
    assert leaked(lab, Path(lab.audit).read_text()) == []


async def test_a_revoked_capability_is_refused(lab):
    await lab.grant("carol", API)
    assert not (await lab.credentials.run_tool("http_request", {"url": "http://api.lab/v1/whoami"}, "carol")).is_error
    await lab.revoke("carol")
    assert audit(lab)[-1]["tool"] == "revoke" and audit(lab)[-1]["session_id"] == "carol"
    refused = await lab.credentials.run_tool("http_request", {"url": "http://api.lab/v1/whoami"}, "carol")
    assert refused.is_error and "no valid capability" in refused.output
