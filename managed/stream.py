"""events.stream: Server-Sent Events of a session, live from when the stream opens (as the API: open the stream,
then list the history, and drop what both gave by event id), or, given a `Last-Event-ID` header as SSE defines it,
from just after that event: a client that reconnects with the last id it read misses and repeats nothing."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from managed.events import Projection
from managed.ids import event_place
from managed.watch import WatchedStore

POLL_S = 0.5  # how often a stream looks for appends other processes made to a shared store
PING_S = 10.0  # a quiet stream sends a ping this often, so a client (or a proxy) knows it is alive
PING = b"event: ping\ndata: {}\n\n"


async def stream(request: web.Request, store: WatchedStore, session_id: str, last_event_id: str | None) -> web.StreamResponse:
    after = event_place(session_id, last_event_id, "Last-Event-ID") if last_event_id else None
    projection = Projection(session_id)
    grown = store.grown(session_id)  # before reading: an append from now on sets it
    log = await store.events(session_id)
    history = projection.feed(log)
    pending = [e for e in history if after is not None and event_place(session_id, e["id"]) > after]
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    read, quiet = len(log), 0.0
    try:
        while True:
            for api_event in pending:
                await response.write(frame(api_event))
                if api_event["type"] == "session.deleted":  # no event follows it
                    return response
            quiet = 0.0 if pending else quiet
            try:
                await asyncio.wait_for(grown.wait(), POLL_S)
            except TimeoutError:
                quiet += POLL_S
            if quiet >= PING_S:
                await response.write(PING)
                quiet = 0.0
            grown = store.grown(session_id)
            new = await store.events(session_id, start=read)
            read += len(new)
            pending = projection.feed(new)
    except ConnectionResetError:  # the client hung up, as streaming clients do
        return response


def frame(api_event: dict[str, Any]) -> bytes:
    return f"event: {api_event['type']}\nid: {api_event['id']}\ndata: {json.dumps(api_event)}\n\n".encode()
