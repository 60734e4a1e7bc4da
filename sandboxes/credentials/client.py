"""The harness's side of the credential proxy: it holds one capability per session, never a secret."""
from __future__ import annotations

import time
from typing import Any, Sequence

from sandboxes.base import Fetch, ToolResult
from sandboxes.credentials.proxy import PROXY_TOOLS
from sandboxes.tools import ToolSpec


class ProxyClient:
    def __init__(self, url: str | None = None):
        self.url = url.rstrip("/") if url else None  # set when the proxy runs
        self._http: Any = None

    async def _session(self):
        if self._http is None:
            from aiohttp import ClientSession, ClientTimeout

            self._http = ClientSession(timeout=ClientTimeout(total=120))
        return self._http

    async def grant(self, admin_token: str, session_id: str, tools: Sequence[str], targets: Sequence[str]) -> str:
        http = await self._session()
        async with http.post(f"{self.url}/grants", json={"session_id": session_id, "tools": list(tools), "targets": list(targets)},
                             headers={"Authorization": f"Bearer {admin_token}"}) as response:
            body = await response.json()
        if response.status != 200:
            raise PermissionError(f"the proxy refused a grant for session {session_id}: {body.get('error')}")
        return body["capability"]

    async def revoke(self, admin_token: str, session_id: str) -> None:
        http = await self._session()
        async with http.delete(f"{self.url}/grants/{session_id}", headers={"Authorization": f"Bearer {admin_token}"}):
            pass

    async def call(self, capability: str | None, tool: str, input: Any) -> ToolResult:
        from aiohttp import ClientError

        if self.url is None:
            return ToolResult("the credential proxy is not running", is_error=True)
        http = await self._session()
        headers = {"Authorization": f"Capability {capability}"} if capability else {}
        started = time.perf_counter()
        try:
            async with http.post(f"{self.url}/tools/{tool}", json=input, headers=headers) as response:
                body = await response.json()
        except (ClientError, ValueError, OSError) as exc:
            return ToolResult(f"the credential proxy could not be reached: {type(exc).__name__}: {exc}", is_error=True)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            return ToolResult(f"the credential proxy refused: {body.get('error')}", True, elapsed)
        return ToolResult(body["output"], bool(body.get("is_error")), elapsed)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


class SessionCredentials:
    """What a harness offers the model through the proxy, and the capability each session was granted."""

    def __init__(self, client: ProxyClient, tools: Sequence[str] = ("http_request",)):
        self.client = client
        self.tools: list[ToolSpec] = [PROXY_TOOLS[name] for name in tools]
        self._capabilities: dict[str, str] = {}

    def hold(self, session_id: str, capability: str) -> None:
        self._capabilities[session_id] = capability

    def holds(self, session_id: str) -> bool:
        return session_id in self._capabilities

    def fetcher(self, session_id: str) -> Fetch:
        """How a sandbox of this session gets its setup's repositories: cloned by the proxy, with the session's capability."""
        return lambda url: self.run_tool("git_clone", {"url": url}, session_id)

    async def run_tool(self, name: str, input: Any, session_id: str) -> ToolResult:
        if session_id not in self._capabilities:
            return ToolResult(f"{name}: this session was granted no credentials", is_error=True)
        return await self.client.call(self._capabilities[session_id], name, input)
