"""The SDK client class each `model.client` names: the Messages API itself, or a cloud that serves Claude.

Every client is the official SDK's own, built here with the transport, timeout and base URL the backend chose;
`profile` holds what a cloud's client takes besides (its region, project, resource).
"""
from __future__ import annotations

from typing import Any, Mapping

CLIENTS = ("anthropic",)


def new_client(kind: str, api_key: str, base_url: str | None, http_client: Any, timeout: float,
               profile: Mapping[str, Any]) -> Any:
    """The SDK's async client for `kind`, its retries off (the backend makes and records its own)."""
    import anthropic

    if kind not in CLIENTS:
        raise ValueError(f"model.client={kind!r}; valid: {', '.join(CLIENTS)}")
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout,
                                    http_client=http_client, **profile)
