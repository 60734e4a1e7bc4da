"""The credential proxy: a process outside every sandbox that runs credentialed tools for sessions.

The lab grants each session a capability (`POST /grants`, with the proxy's admin token): a random token
scoped to some tools and some services. The harness holds only that capability; on a tool call
(`POST /tools/NAME`, `Authorization: Capability <token>`) the proxy checks the capability, the tool and
the target, takes the service's secret from its vault into the request it makes, and returns the result
with every secret redacted. Every call and every refusal is written to the audit log (redacted too).

    python -m sandboxes.credentials.proxy  < {"admin_token", "secrets", "services", "audit"}
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import os
import posixpath
import secrets as random_tokens
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from processes.children import serve, serve_app
from sandboxes.credentials.vault import Vault
from sandboxes.tools import ToolError, ToolSpec, object_schema, validate_input

OUTPUT_LIMIT = 20_000  # characters of a response body returned

PROXY_TOOLS: dict[str, ToolSpec] = {
    spec.name: spec for spec in [
        ToolSpec(
            "http_request",
            "Call an allowlisted HTTP service with this session's credentials (added by the proxy; you never see them). "
            "Returns the status line and the body.",
            object_schema(["url"], url={"type": "string", "minLength": 1},
                          method={"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                          body={"type": "string"}),
            idempotent=False,
        ),
        ToolSpec(
            "git_clone",
            "Clone an allowlisted git repository (the proxy authenticates the fetch); returns the checkout as an archive.",
            object_schema(["url"], url={"type": "string", "minLength": 1}),
            idempotent=True,
            read_only=True,
        ),
    ]
}


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Service:
    """A credentialed service. Sessions address it as http://NAME.lab/...; the proxy forwards to `upstream`."""

    name: str
    upstream: str  # where it really is, e.g. http://127.0.0.1:41303
    secret: str  # its name in the vault
    auth: str = "bearer"  # "bearer" | "basic" (the secret as password, for git over HTTP)
    kind: str = "http"  # "http" (http_request) | "git" (git_clone)

    @property
    def url(self) -> str:
        return f"http://{self.name}.lab"

    def upstream_url(self, url: str) -> str | None:
        """Where a session's URL goes, or None if it is not this service's (other host, port or scheme, userinfo)."""
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port, parts.username, parts.password) != ("http", f"{self.name}.lab", None, None, None):
            return None
        path = posixpath.normpath("/" + parts.path.lstrip("/"))  # dot segments cannot climb out of the service
        return self.upstream.rstrip("/") + path + (f"?{parts.query}" if parts.query else "")

    def header(self, secret: str) -> str:
        if self.auth == "basic":
            return "Basic " + base64.b64encode(f"x-access-token:{secret}".encode()).decode()
        return f"Bearer {secret}"


@dataclass(frozen=True, slots=True)
class Grant:
    session_id: str
    tools: frozenset[str]
    targets: frozenset[str]  # service names


class CredentialProxy:
    def __init__(self, vault: Vault, services: dict[str, Service], admin_token: str, audit: Path | None = None):
        self.vault, self.services, self.admin_token, self.audit = vault, services, admin_token, audit
        self.grants: dict[str, Grant] = {}
        self._http: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/grants", self._grant)
        app.router.add_delete("/grants/{session_id}", self._revoke)
        app.router.add_post("/tools/{name}", self._tool)
        app.on_cleanup.append(self._close)
        return app

    def _from_admin(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {self.admin_token}")

    async def _grant(self, request: web.Request) -> web.Response:
        if not self._from_admin(request):
            return self._refuse(401, "grants need the proxy's admin token", None, "grant", None)
        try:
            body = await request.json()
        except ValueError:
            body = None
        lists = isinstance(body, dict) and all(isinstance(body.get(k, []), list) for k in ("tools", "targets"))
        if not lists or not isinstance(body.get("session_id"), str):
            return self._refuse(400, "a grant is {session_id: string, tools: [names], targets: [service names]}", None, "grant", None)
        tools, targets = set(map(str, body.get("tools", []))), set(map(str, body.get("targets", [])))
        if unknown := tools - PROXY_TOOLS.keys():
            return self._refuse(400, f"unknown tools {sorted(unknown)}; the proxy runs {sorted(PROXY_TOOLS)}", None, "grant", None)
        if unknown := targets - self.services.keys():
            return self._refuse(400, f"unknown services {sorted(unknown)}; the proxy knows {sorted(self.services)}", None, "grant", None)
        capability = "cap_" + random_tokens.token_hex(24)
        self.grants[capability] = Grant(str(body["session_id"]), frozenset(tools), frozenset(targets))
        self._audit(body["session_id"], "grant", None, "ok", f"tools {sorted(tools)}, services {sorted(targets)}")
        return web.json_response({"capability": capability})

    async def _revoke(self, request: web.Request) -> web.Response:
        if not self._from_admin(request):
            return self._refuse(401, "revoking needs the proxy's admin token", None, "revoke", None)
        session_id = request.match_info["session_id"]
        revoked = [c for c, g in self.grants.items() if g.session_id == session_id]
        for capability in revoked:
            del self.grants[capability]
        self._audit(session_id, "revoke", None, "ok", f"{len(revoked)} capability(ies) revoked")
        return web.json_response({"revoked": len(revoked)})

    async def _tool(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        scheme, _, capability = request.headers.get("Authorization", "").partition(" ")
        grant = self.grants.get(capability) if scheme == "Capability" else None
        if grant is None:
            return self._refuse(401, "no valid capability: the proxy runs tools only for sessions granted one", None, name, None)
        try:
            input = await request.json()
            validate_input(name, input, PROXY_TOOLS)
            service = self._target(grant, name, input["url"])
            upstream = {**input, "url": service.upstream_url(input["url"]), "public_url": input["url"]}
            output = await (self._http_request if name == "http_request" else self._git_clone)(service, upstream)
        except Refused as refused:
            return self._refuse(refused.status, str(refused), grant.session_id, name, input.get("url"))
        except (ToolError, ValueError) as exc:
            return self._refuse(400, str(exc), grant.session_id, name, None)
        self._audit(grant.session_id, name, input["url"], "ok", "")
        return web.json_response({"output": self.vault.redact(output), "is_error": False})

    def _target(self, grant: Grant, tool: str, url: str) -> Service:
        if tool not in grant.tools:
            raise Refused(403, f"this session's capability does not allow {tool}; it allows {', '.join(sorted(grant.tools)) or 'nothing'}")
        kind = "git" if tool == "git_clone" else "http"
        allowed = [self.services[name] for name in sorted(grant.targets) if self.services[name].kind == kind]
        for service in allowed:
            if service.upstream_url(url) is not None:
                return service
        listed = ", ".join(s.url for s in allowed) or "none"
        raise Refused(403, f"target {url!r} is not allowlisted for this session; {tool} may reach: {listed}")

    async def _http_request(self, service: Service, input: dict) -> str:
        if self._http is None:
            self._http = ClientSession(timeout=ClientTimeout(total=30))
        headers = {"Authorization": self.vault.use(service.secret, service.header)}
        try:
            async with self._http.request(input.get("method", "GET"), input["url"], data=input.get("body"),
                                          headers=headers, allow_redirects=False) as response:
                text = (await response.read()).decode(errors="replace")
        except (ClientError, asyncio.TimeoutError) as exc:
            raise Refused(502, f"{service.name} did not answer: {type(exc).__name__}: {exc}") from None
        if len(text) > OUTPUT_LIMIT:
            text = text[:OUTPUT_LIMIT] + f"\n[... {len(text) - OUTPUT_LIMIT} more characters not shown]"
        return f"HTTP {response.status} {response.reason}\n{text}"

    async def _git_clone(self, service: Service, input: dict) -> str:
        """A shallow clone into a private folder, its remote left without credentials, returned as base64 tar.gz."""
        with tempfile.TemporaryDirectory(prefix="harnesslab-clone-") as folder:
            checkout = Path(folder) / "repo"
            header = self.vault.use(service.secret, service.header)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder, "GIT_TERMINAL_PROMPT": "0",
                   "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                   "GIT_CONFIG_VALUE_0": f"Authorization: {header}"}
            process = await asyncio.create_subprocess_exec(
                "git", "clone", "--quiet", "--depth", "1", "--", input["url"], str(checkout), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await process.communicate()
            if process.returncode != 0:
                raise Refused(502, f"git clone failed: {err.decode(errors='replace').strip()[-500:]}")
            rename = await asyncio.create_subprocess_exec(  # the checkout names the service as sessions know it
                "git", "-C", str(checkout), "remote", "set-url", "origin", input["public_url"], env=env)
            await rename.wait()
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                tar.add(checkout, arcname=".")
            return base64.b64encode(archive.getvalue()).decode()

    def _refuse(self, status: int, message: str, session_id: str | None, tool: str, target: str | None) -> web.Response:
        self._audit(session_id, tool, target, "refused", message)
        return web.json_response({"error": self.vault.redact(message)}, status=status)

    def _audit(self, session_id: str | None, tool: str, target: str | None, outcome: str, detail: str) -> None:
        if self.audit is not None:
            entry = {"ts": time.time(), "session_id": session_id, "tool": tool, "target": target, "outcome": outcome, "detail": detail}
            with self.audit.open("a") as log:
                log.write(self.vault.redact(json.dumps(entry)) + "\n")

    async def _close(self, app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()


async def start(config: dict[str, Any]):
    vault = Vault.load(config.get("secrets_file"), dict(config.get("environment") or {}), config.get("secrets"))
    services = {name: Service(name, **spec) for name, spec in (config.get("services") or {}).items()}
    audit = Path(config["audit"]) if config.get("audit") else None
    url, stop = await serve_app(CredentialProxy(vault, services, config["admin_token"], audit).app(), int(config.get("port", 0)))
    return {"url": url, "pid": os.getpid(), "secrets": vault.names()}, stop


if __name__ == "__main__":
    serve(start)
