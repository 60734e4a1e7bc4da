"""Agents: create, retrieve (any version), update (a new version), list, and list versions.

An agent's definition is what the API returns of it, minus ids and times; version 1 is in its log's meta, each
later version an AgentVersion event. What a session runs is a snapshot of one version (managed/sessions.py).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from managed import errors, ids
from managed.errors import invalid, not_served
from managed.records import Records, listing, page
from managed.toolset import AGENT_TOOLS, TOOLSET_TYPE
from stores.base import Event
from stores.events import AgentVersion

FIELDS = {"name", "model", "description", "system", "tools", "metadata", "mcp_servers", "skills", "multiagent",
          "execution_identity"}
SERVICE_ACCOUNT = {"type": "service_account"}
ALWAYS_ALLOW = {"type": "always_allow"}
NOT_YET = {  # fields a later slice serves; given empty (or null), they are accepted
    "mcp_servers": "MCP servers and mcp_toolset come in a later slice",
    "skills": "skills are not served",
    "multiagent": "multiagent orchestration is not served",
}


async def create(records: Records, body: Any) -> dict[str, Any]:
    body = errors.body_object(body)
    errors.known_fields(body, FIELDS)
    definition = _definition(body, {})
    agent_id = ids.new_id(ids.AGENT)
    await records.create("agent", agent_id, {"agent": definition})
    return await retrieve(records, agent_id)


async def retrieve(records: Records, agent_id: str, version: str | None = None) -> dict[str, Any]:
    versions = _versions(agent_id, await records.log("agent", agent_id))
    if version is None:
        return versions[-1]
    if not version.isdigit() or not 1 <= int(version) <= len(versions):
        raise invalid(f"version: agent {agent_id} has versions 1 to {len(versions)}, not {version[:20]!r}")
    return versions[int(version) - 1]


async def update(records: Records, agent_id: str, body: Any) -> dict[str, Any]:
    body = errors.body_object(body)
    errors.known_fields(body, FIELDS | {"version"})
    log = await records.log("agent", agent_id)
    current = _versions(agent_id, log)[-1]
    expected = body.get("version")
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool) or expected < 1):
        raise invalid(f"version: expected a whole number >= 1 (the version the update applies to), got {expected!r}")
    if expected is not None and expected != current["version"]:
        raise errors.conflict(f"version: agent {agent_id} is at version {current['version']}, not {expected!r}; "
                              "retrieve it and apply the update to the current version")
    definition = _definition(body, {key: current[key] for key in FIELDS})
    if definition == {key: current[key] for key in FIELDS}:
        return current  # an update that changes nothing makes no new version
    await records.store.append(agent_id, [AgentVersion(definition).event()], expect=len(log))
    return await retrieve(records, agent_id)


async def agents(records: Records, query: Mapping[str, str]) -> dict[str, Any]:
    latest = [await retrieve(records, info.id) for info in await records.infos("agent")]
    chosen, next_page = page(latest, lambda agent: agent["id"], query.get("page"), errors.limit(query))
    return listing(chosen, next_page)


async def versions(records: Records, agent_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    every = list(reversed(_versions(agent_id, await records.log("agent", agent_id))))  # newest first
    chosen, next_page = page(every, lambda agent: str(agent["version"]), query.get("page"), errors.limit(query))
    return listing(chosen, next_page)


def enabled_tools(definition: Mapping[str, Any]) -> list[str]:
    """The agent toolset's tools this definition enables (none without the toolset)."""
    return [config["name"] for tool in definition.get("tools", []) if tool["type"] == TOOLSET_TYPE
            for config in tool["configs"] if config["enabled"]]


def _versions(agent_id: str, log: list[Event]) -> list[dict[str, Any]]:
    """Every version of the agent, as the API returns it, oldest first."""
    created = log[0].ts
    stored = [(log[0].data["agent"], created)] + [(AgentVersion.read(e).definition, e.ts) for e in log if e.type == AgentVersion.TYPE]
    return [{"type": "agent", "id": agent_id, "version": number, **definition, "created_at": ids.timestamp(created),
             "updated_at": ids.timestamp(ts), "archived_at": None}
            for number, (definition, ts) in enumerate(stored, 1)]


def _definition(body: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's definition from `body`; an update (`current`: the latest version's) keeps what `body` leaves out."""
    for name, why in NOT_YET.items():
        if body.get(name):
            raise not_served(name, why)

    def field(name: str, read: Callable[[], Any]) -> Any:
        return read() if name in body or not current else current[name]

    return {
        "name": field("name", lambda: errors.text(body, "name", required=True, empty=False)),
        "model": field("model", lambda: _model(body.get("model"))),
        "description": field("description", lambda: errors.text(body, "description")),
        "system": field("system", lambda: errors.text(body, "system")),
        "tools": field("tools", lambda: _tools(body.get("tools"))),
        "metadata": _metadata(body, current),
        "mcp_servers": [], "skills": [], "multiagent": None,
        "execution_identity": _identity(body.get("execution_identity")),
    }


def _metadata(body: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, str]:
    if not current:
        return errors.patched({}, errors.metadata(body.get("metadata")))
    if "metadata" not in body:
        return current["metadata"]
    return errors.patched(current["metadata"], errors.metadata(body["metadata"], patch=True))


def _model(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value:
        return {"id": value}
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        errors.known_fields(value, {"id", "speed", "effort", "inference_geo"}, "model.")
        return {key: item for key, item in value.items() if item is not None}
    raise invalid(f"model: expected a model name like 'claude-sonnet-4-6', or {{\"id\": ...}}, got {errors.kind_of(value)}")


def _identity(value: Any) -> dict[str, str]:
    if value is None or value == SERVICE_ACCOUNT:
        return dict(SERVICE_ACCOUNT)
    raise not_served("execution_identity other than service_account", "harnesslab runs every agent as itself")


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"tools: expected an array of tool configurations, got {errors.kind_of(value)}")
    return [_toolset(tool, f"tools.{index}") for index, tool in enumerate(value)]


def _toolset(tool: Any, where: str) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind in ("custom", "mcp_toolset"):
        raise not_served(f"{where}: a {kind} tool", "custom tools (requires_action) and MCP toolsets come in a later slice")
    if kind != TOOLSET_TYPE:
        raise invalid(f"{where}.type: expected {TOOLSET_TYPE!r}, 'custom' or 'mcp_toolset', got {kind!r}")
    errors.known_fields(tool, {"type", "default_config", "configs"}, f"{where}.")
    default = _config(tool.get("default_config") or {}, {"enabled": True, "permission_policy": ALWAYS_ALLOW}, f"{where}.default_config")
    given = {}
    for index, config in enumerate(tool.get("configs") or []):
        name = config.get("name") if isinstance(config, dict) else None
        if name not in AGENT_TOOLS and name not in ("web_fetch", "web_search"):
            raise invalid(f"{where}.configs.{index}.name: expected one of {', '.join([*AGENT_TOOLS, 'web_fetch', 'web_search'])}, got {name!r}")
        given[name] = _config({k: v for k, v in config.items() if k != "name"}, default, f"{where}.configs.{index}")
    if any(given.get(web, {}).get("enabled") for web in ("web_fetch", "web_search")):
        raise not_served(f"{where}: web_fetch and web_search", "harnesslab's hands reach no network beyond loopback")
    configs = [{"type": name, "name": name, **given.get(name, default)} for name in AGENT_TOOLS]
    return {"type": TOOLSET_TYPE, "default_config": default, "configs": configs}


def _config(config: Any, default: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise invalid(f"{where}: expected an object, got {errors.kind_of(config)}")
    errors.known_fields(config, {"enabled", "permission_policy", "type"}, f"{where}.")
    enabled = errors.flag(config, "enabled", default["enabled"])
    policy = config.get("permission_policy") or default["permission_policy"]
    if policy != ALWAYS_ALLOW:
        kind = policy.get("type") if isinstance(policy, dict) else policy
        if kind not in ("always_ask", "auto"):
            raise invalid(f"{where}.permission_policy.type: expected always_allow, always_ask or auto, got {kind!r}")
        raise not_served(f"{where}.permission_policy {kind}", "tool confirmation comes in a later slice")
    return {"enabled": enabled, "permission_policy": dict(ALWAYS_ALLOW)}
