"""The credential set-up of a run: the proxy (and, for tests and the red team, local services with planted
secrets) as processes of their own, and a grant for each session that asks for credentials.

The lab holds the proxy's admin token and grants capabilities; harnesses get only capabilities
(`SessionCredentials`); sandboxes get nothing. A session asks in its meta:
`credentials: {tools: [http_request], targets: [api]}`.
"""
from __future__ import annotations

import os
import secrets as random_tokens
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from processes.children import Child
from sandboxes.credentials.client import ProxyClient, SessionCredentials
from sandboxes.credentials.vault import ENV_PREFIX

DEMO_REPOSITORY = {"README.md": "# demo\n\nA repository served by the lab's git service.\n", "VERSION": "1.4.2\n"}


class CredentialLab:
    def __init__(self, test_services: bool = True, services: Mapping[str, Mapping[str, str]] | None = None,
                 secrets_file: str | None = None, audit: str | None = None):
        self.test_services, self.services = test_services, dict(services or {})
        self.secrets_file = str(Path(secrets_file).resolve()) if secrets_file else None  # the proxy starts elsewhere
        self.audit = Path(audit) if audit else None
        self.planted: dict[str, str] = {}  # the test services' secrets: what the red team checks every output for
        self._children: list[Child] = []
        self._admin_token = random_tokens.token_urlsafe(32)
        self._folder: tempfile.TemporaryDirectory | None = None
        self.credentials = SessionCredentials(ProxyClient())  # what harnesses get: the proxy's address once it runs
        self.proxy_url: str | None = None

    async def start(self) -> None:
        if self.proxy_url is not None:
            return
        self._folder = tempfile.TemporaryDirectory(prefix="harnesslab-credentials-")
        if self.secrets_file and not Path(self.secrets_file).is_file():
            raise FileNotFoundError(f"credentials.secrets_file {self.secrets_file}: no such file")
        # HARNESSLAB_SECRET_* variables move to the proxy: no process started from here inherits them
        environment = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith(ENV_PREFIX)}
        secrets: dict[str, str] = {}
        services = {name: dict(spec) for name, spec in self.services.items()}
        if self.test_services:
            self.planted = {"api_token": "hlab-api-" + random_tokens.token_hex(16), "git_token": "hlab-git-" + random_tokens.token_hex(16)}
            secrets.update(self.planted)
            urls = self._spawn("sandboxes.credentials.services", {
                "api_token": self.planted["api_token"], "git_token": self.planted["git_token"],
                "root": str(Path(self._folder.name) / "git"), "repos": {"demo.git": DEMO_REPOSITORY}})
            services["api"] = {"upstream": urls["api"], "secret": "api_token", "auth": "bearer", "kind": "http"}
            services["git"] = {"upstream": urls["git"], "secret": "git_token", "auth": "basic", "kind": "git"}
        audit = self.audit or Path(self._folder.name) / "audit.jsonl"
        proxy = self._spawn("sandboxes.credentials.proxy", {
            "admin_token": self._admin_token, "secrets": secrets, "environment": environment,
            "secrets_file": self.secrets_file, "services": services, "audit": str(audit)})
        self.audit, self.proxy_url, self.proxy_pid = audit, proxy["url"], proxy["pid"]
        self.secret_names: list[str] = proxy["secrets"]  # what the proxy's vault holds: names only
        print(f"credential proxy on {self.proxy_url} (pid {self.proxy_pid}), secrets: {', '.join(self.secret_names) or 'none'}",
              file=sys.stderr, flush=True)
        self.credentials.client.url = self.proxy_url

    def _spawn(self, module: str, config: dict[str, Any]) -> dict[str, Any]:
        child = Child(module, config)
        self._children.append(child)
        return child.start()

    async def grant(self, session_id: str, meta: Mapping[str, Any]) -> None:
        """Grant the session what its meta asks for, and hand the capability to the harness's credentials."""
        wanted = meta.get("credentials")
        if not wanted:
            return
        await self.start()
        capability = await self.credentials.client.grant(
            self._admin_token, session_id, wanted.get("tools", []), wanted.get("targets", []))
        self.credentials.hold(session_id, capability)

    async def revoke(self, session_id: str) -> None:
        """End the session's capability at the proxy (the session is over; a later grant makes a new one)."""
        if self.proxy_url is not None and self.credentials.holds(session_id):
            await self.credentials.client.revoke(self._admin_token, session_id)

    async def close(self) -> None:
        await self.credentials.client.close()
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self._folder is not None:
            self._folder.cleanup()
