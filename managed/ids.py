"""The API's identifiers and timestamps: resource ids with their prefixes, event ids derived from log positions
(so a list pages over the log and a stream resumes after any event), page cursors."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from managed.errors import invalid

AGENT, ENVIRONMENT, SESSION = "agent", "env", "sesn"  # the prefixes of the API's ids: agent_..., env_..., sesn_...
EVENT = "sevt"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def has_prefix(resource_id: str, prefix: str) -> bool:
    return isinstance(resource_id, str) and resource_id.startswith(f"{prefix}_")


def event_id(session_id: str, position: int, index: int) -> str:
    """The id of the `index`-th API event projected from log position `position` of `session_id`."""
    return f"{EVENT}_{session_id.removeprefix(SESSION + '_')}_{position}_{index}"


def event_place(session_id: str, value: str, name: str = "event id") -> tuple[int, int]:
    """(position, index) of an event id of this session; a 400 naming `name` for anything else."""
    prefix = f"{EVENT}_{session_id.removeprefix(SESSION + '_')}_"
    position, _, index = value.removeprefix(prefix).partition("_") if value.startswith(prefix) else ("", "", "")
    if not (position.isdigit() and index.isdigit()):
        raise invalid(f"{name}: {value[:100]!r} is not the id of an event of session {session_id}")
    return int(position), int(index)


def timestamp(ts: float) -> str:
    """RFC 3339, as the API writes times (UTC, microseconds)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")
