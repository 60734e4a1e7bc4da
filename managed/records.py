"""The API's resources, kept as logs in the session store: an agent, an environment and a session are each one
log, told apart by the `managed` key of their `session.created` meta, so every server on one store sees them all
and a restarted server finds them again. An agent's later versions and a session's changes are events of their own
(stores/events.py: AgentVersion, SessionUpdated); a deleted session's log is kept, ended by a SessionDeleted
tombstone, and the API no longer shows it. A self-hosted environment's log also holds its work queue (managed/work.py).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

from managed.errors import invalid, not_found
from stores.base import Event, InvalidSessionId, SessionInfo, SessionNotFound, SessionStore
from stores.events import SessionDeleted

KIND = "managed"  # the meta key naming what a log holds: one of KINDS
KINDS = ("agent", "environment", "session")

T = TypeVar("T")


class Records:
    """Create, read and list the logs of one kind of resource in `store`."""

    def __init__(self, store: SessionStore):
        self.store = store

    async def create(self, kind: str, record_id: str, meta: dict[str, Any]) -> None:
        await self.store.create_session({KIND: kind, **meta}, record_id)

    async def log(self, kind: str, record_id: str) -> list[Event]:
        """The whole log of resource `record_id` of `kind`; a 404 if there is none (or it was deleted)."""
        try:
            events = await self.store.events(record_id)
        except (SessionNotFound, InvalidSessionId):
            raise not_found(kind, record_id) from None
        if not events or events[0].data.get(KIND) != kind or events[-1].type == SessionDeleted.TYPE:
            raise not_found(kind, record_id)
        return events

    async def infos(self, kind: str) -> list[SessionInfo]:
        """Every resource of `kind`, newest first."""
        found = [info for info in await self.store.sessions() if info.meta.get(KIND) == kind]
        return sorted(found, key=lambda info: info.created, reverse=True)


def page(items: Sequence[T], key: Callable[[T], str], after: str | None, limit: int) -> tuple[list[T], str | None]:
    """The `limit` items after the one whose key is `after` (the previous page's cursor), and the next cursor."""
    start = 0
    if after:
        keys = [key(item) for item in items]
        if after not in keys:
            raise invalid(f"page: {after[:100]!r} is not a cursor this list gave (pass a previous response's next_page)")
        start = keys.index(after) + 1
    chosen = list(items[start:start + limit])
    more = start + limit < len(items)
    return chosen, key(chosen[-1]) if chosen and more else None


def listing(data: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
    """A page as the SDK's cursor pagers read it."""
    return {"data": data, "next_page": next_page, "prev_page": None}
