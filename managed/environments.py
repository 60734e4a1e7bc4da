"""Environments: where a session's tools run. A `cloud` environment is the sandbox backend the server was started
with (config group `sandbox`); a `self_hosted` one is a work queue (managed/work.py) from which the SDK's
EnvironmentWorker, on any machine that reaches the server, takes the sessions whose tools it runs in its own folder."""
from __future__ import annotations

from typing import Any, Mapping

from managed import errors, ids
from managed.errors import invalid, not_served
from managed.hands import WORKER_HAND
from managed.records import Records, listing, page

FIELDS = {"name", "config", "description", "metadata", "scope"}
NO_PACKAGES = {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [], "npm": [], "pip": []}


async def create(records: Records, body: Any, hand: str) -> dict[str, Any]:
    body = errors.body_object(body)
    errors.known_fields(body, FIELDS)
    scope = body.get("scope")
    if scope not in (None, "organization", "account"):
        raise invalid(f"scope: expected 'organization' or 'account', got {scope!r}")
    record = {
        "name": errors.text(body, "name", required=True, empty=False),
        "description": errors.text(body, "description"),
        "metadata": errors.patched({}, errors.metadata(body.get("metadata"))),
        "config": (config := _config(body.get("config"))),
        "scope": scope or "organization",
        "hand": WORKER_HAND if config["type"] == "self_hosted" else hand,
    }
    environment_id = ids.new_id(ids.ENVIRONMENT)
    await records.create("environment", environment_id, {"environment": record})
    return await retrieve(records, environment_id)


async def retrieve(records: Records, environment_id: str) -> dict[str, Any]:
    log = await records.log("environment", environment_id)
    record = dict(log[0].data["environment"])
    created = ids.timestamp(log[0].ts)
    return {"type": "environment", "id": environment_id, "created_at": created, "updated_at": created,
            "archived_at": None, "harnesslab": {"sandbox": record.pop("hand")}, **record}


async def environments(records: Records, query: Mapping[str, str]) -> dict[str, Any]:
    every = [await retrieve(records, info.id) for info in await records.infos("environment")]
    chosen, next_page = page(every, lambda environment: environment["id"], query.get("page"), errors.limit(query))
    return listing(chosen, next_page)


def _config(config: Any) -> dict[str, Any]:
    if config is None:
        config = {"type": "cloud"}
    kind = config.get("type") if isinstance(config, dict) else None
    if kind == "self_hosted":
        errors.known_fields(config, {"type"}, "config.")
        return {"type": "self_hosted"}
    if kind != "cloud":
        raise invalid(f"config.type: expected 'cloud' or 'self_hosted', got {kind!r}")
    errors.known_fields(config, {"type", "networking", "packages"}, "config.")
    packages = config.get("packages") or {}
    if any(packages.get(manager) for manager in NO_PACKAGES if manager != "type"):
        raise not_served("config.packages", "the sandbox is the configured backend's, offline: install nothing into it")
    networking = config.get("networking") or {"type": "unrestricted"}
    if not isinstance(networking, dict) or networking.get("type") not in ("unrestricted", "limited"):
        raise invalid("config.networking.type: expected 'unrestricted' or 'limited'")
    if networking["type"] == "limited":
        networking = {"allow_mcp_servers": False, "allow_package_managers": False, "allowed_hosts": [], **networking}
    return {"type": "cloud", "networking": networking, "packages": dict(NO_PACKAGES)}
