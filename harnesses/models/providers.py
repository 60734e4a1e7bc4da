"""The SDK client class each `model.client` names: the Messages API itself, or a cloud that serves Claude.

Every client is the official SDK's own, built here with the transport, timeout and base URL the backend chose;
`profile` holds what a cloud's client takes besides (its region, project, resource). Only those settings: a
credential never goes in the profile (a run's config is written to disk), it comes from the environment variable
`model.api_key_env` names (docs/providers.md).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Provider:
    """How the SDK's client for one cloud is built."""

    client_class: str  # in the `anthropic` package
    credential: str  # the argument the credential from model.api_key_env is passed as
    settings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # each one the profile may give: the
    # variables the SDK reads when the profile does not; every setting is needed
    base_url_replaces: tuple[str, ...] = ()  # settings a base_url stands for (the SDK refuses both)
    needs: tuple[str, str] | None = None  # a module the client imports beyond the SDK's own, and the extra with it


PROVIDERS: dict[str, Provider] = {
    "anthropic": Provider("AsyncAnthropic", "api_key"),
    # A Bedrock API key (a bearer token); the stream is AWS eventstream, which the SDK decodes with botocore.
    "bedrock": Provider("AsyncAnthropicBedrock", "api_key", {"aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION")},
                        needs=("botocore", "bedrock")),
    # An OAuth access token (`gcloud auth print-access-token`).
    "vertex": Provider("AsyncAnthropicVertex", "access_token",
                       {"region": ("CLOUD_ML_REGION",), "project_id": ("ANTHROPIC_VERTEX_PROJECT_ID",)}),
    "foundry": Provider("AsyncAnthropicFoundry", "api_key", {"resource": ("ANTHROPIC_FOUNDRY_RESOURCE",)},
                        base_url_replaces=("resource",)),
}
CLIENTS = tuple(PROVIDERS)


def new_client(kind: str, api_key: str, base_url: str | None, http_client: Any, timeout: float,
               profile: Mapping[str, Any]) -> Any:
    """The SDK's async client for `kind`, its retries off (the backend makes and records its own)."""
    import anthropic

    provider = provider_for(kind)
    profile = {key: value for key, value in profile.items() if value is not None}  # null: the SDK's variable
    check_profile(kind, provider, profile, base_url)
    client_class = getattr(anthropic, provider.client_class)
    return client_class(**{provider.credential: api_key}, base_url=base_url, max_retries=0, timeout=timeout,
                        http_client=http_client, **profile)


def provider_for(kind: str) -> Provider:
    if kind not in PROVIDERS:
        raise ValueError(f"model.client={kind!r}; valid: {', '.join(CLIENTS)}")
    return PROVIDERS[kind]


def check_profile(kind: str, provider: Provider, profile: Mapping[str, Any], base_url: str | None) -> None:
    """Raise ValueError naming the first setting the profile gets wrong or lacks, and what would do."""
    for key, value in profile.items():
        if key not in provider.settings:
            valid = ", ".join(provider.settings) or "none"
            raise ValueError(f"model.profile.{key} is not a setting of model.client={kind}; valid: {valid} "
                             "(a credential comes from the variable model.api_key_env names)")
        if not isinstance(value, str) or not value:
            raise ValueError(f"model.profile.{key}={value!r}; valid: a non-empty string")
    for key, variables in provider.settings.items():
        if base_url and key in provider.base_url_replaces:
            if key in profile:
                raise ValueError(f"model.profile.{key} and model.base_url both name the endpoint of "
                                 f"model.client={kind}; give one")
        elif key not in profile and not any(os.environ.get(name) for name in variables):
            instead = " or ".join(f"${name}" for name in variables)
            also = " (or model.base_url)" if key in provider.base_url_replaces else ""
            raise ValueError(f"model.client={kind} needs model.profile.{key}{also}, or {instead} set")
    if provider.needs is not None and importlib.util.find_spec(provider.needs[0]) is None:
        module, extra = provider.needs
        raise ValueError(f"model.client={kind} needs {module}, which is not installed: "
                         f"pip install 'harnesslab[{extra}]'")
