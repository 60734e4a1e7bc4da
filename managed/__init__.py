"""The Claude Managed Agents API (beta managed-agents-2026-04-01) served by harnesslab's own parts: agents,
environments and sessions kept in the session store, events that are a projection of the session log, and the
agent toolset run by harnesslab's sandboxes (docs/managed.md)."""
