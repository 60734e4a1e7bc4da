"""`harnesslab serve`: the Managed Agents API over HTTP (aiohttp), on harnesslab's parts.

Every request needs an API key (`x-api-key`, or `Authorization: Bearer`): any key, unless `api_keys` lists some,
and the beta header `anthropic-beta: managed-agents-2026-04-01`, as the SDK sends them. A self-hosted environment's
work queue takes the environment key only (as the API: it rejects an API key), and the session routes take it too,
since a worker reads and answers its sessions with it. Errors have the API's shape and status: 400 naming the field
(or saying what is not served yet), 401, 404 for an unknown id, 409 for a write that conflicts with the resource's
state, 412 for a heartbeat whose lease another worker may hold.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from harnesses.base import Harness
from managed import agents, environments, errors, sessions
from managed.driver import Driver
from managed.errors import ApiError, invalid
from managed.events import ENVIRONMENT_TYPE, awaiting_worker, project, user_events
from managed.hands import WorkerHands
from managed.ids import event_place
from managed.records import Records, listing, page
from managed.sessions import TaskMeta
from managed.stream import stream
from managed.watch import WatchedStore
from managed.work import WorkQueue
from sandboxes.base import SandboxProvider
from stores.base import Conflict

log = logging.getLogger(__name__)
BETA = "managed-agents-2026-04-01"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WORK_ROUTES = "/v1/environments/{id}/work"


class ManagedServer:
    """`harness` drives the sessions of cloud environments on the sandbox backend `hand`; `worker_harness(hands)`
    builds the harness for those of self-hosted environments over their workers' hands (the same harness, its
    hands `hands`), whose work queues `environment_key` opens and whose leases last `lease_ttl_s`."""

    def __init__(self, store: WatchedStore, harness: Harness, hand: str, api_keys: Sequence[str] = (),
                 task_meta: TaskMeta | None = None, *, worker_harness: Callable[[SandboxProvider], Harness] | None = None,
                 environment_key: str = "", lease_ttl_s: int = 300):
        self.store, self.hand, self.api_keys, self.task_meta = store, hand, frozenset(api_keys), task_meta
        self.environment_key = environment_key
        self.records = Records(store)
        self.work = WorkQueue(self.records, lease_ttl_s)
        harnesses = {"cloud": harness}
        if worker_harness is not None:
            harnesses["self_hosted"] = worker_harness(WorkerHands(store, self.work))
        self.driver = Driver(harnesses, store)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._api_errors], client_max_size=32 * 1024 * 1024)
        records = self.records
        for method, path, answer in [
            ("POST", "/v1/agents", lambda r, body: agents.create(records, body)),
            ("GET", "/v1/agents", lambda r, _: agents.agents(records, r.query)),
            ("GET", "/v1/agents/{id}", lambda r, _: agents.retrieve(records, r.match_info["id"], r.query.get("version"))),
            ("POST", "/v1/agents/{id}", lambda r, body: agents.update(records, r.match_info["id"], body)),
            ("GET", "/v1/agents/{id}/versions", lambda r, _: agents.versions(records, r.match_info["id"], r.query)),
            ("POST", "/v1/environments", lambda r, body: environments.create(records, body, self.hand)),
            ("GET", "/v1/environments", lambda r, _: environments.environments(records, r.query)),
            ("GET", "/v1/environments/{id}", lambda r, _: environments.retrieve(records, r.match_info["id"])),
            ("POST", "/v1/sessions", lambda r, body: self._create_session(body)),
            ("GET", "/v1/sessions", lambda r, _: sessions.sessions(records, r.query, r.query.getall("statuses[]", []))),
            ("GET", "/v1/sessions/{id}", lambda r, _: sessions.retrieve(records, r.match_info["id"])),
            ("POST", "/v1/sessions/{id}", lambda r, body: sessions.update(records, r.match_info["id"], body)),
            ("DELETE", "/v1/sessions/{id}", lambda r, _: sessions.delete(records, r.match_info["id"])),
            ("GET", "/v1/sessions/{id}/events", lambda r, _: self._list_events(r.match_info["id"], r.query)),
            ("POST", "/v1/sessions/{id}/events", lambda r, body: self._send_events(r.match_info["id"], body)),
            *self._work_routes(),
        ]:
            app.router.add_route(method, path, _json_handler(answer, with_body=method == "POST"))
        app.router.add_get("/v1/sessions/{id}/events/stream", self._stream_events)
        return app

    def _work_routes(self) -> list[tuple[str, str, Callable[[web.Request, Any], Awaitable[Any]]]]:
        work, item = self.work, lambda r: (r.match_info["id"], r.match_info["work_id"])
        return [
            ("GET", f"{WORK_ROUTES}/poll", lambda r, _: work.poll(r.match_info["id"], r.query, r.headers.get("Anthropic-Worker-ID"))),
            ("GET", f"{WORK_ROUTES}/stats", lambda r, _: work.stats(r.match_info["id"])),
            ("GET", WORK_ROUTES, lambda r, _: work.list(r.match_info["id"], r.query)),
            ("GET", f"{WORK_ROUTES}/{{work_id}}", lambda r, _: work.retrieve(*item(r))),
            ("POST", f"{WORK_ROUTES}/{{work_id}}", lambda r, body: work.update(*item(r), body)),
            ("POST", f"{WORK_ROUTES}/{{work_id}}/ack", lambda r, _: work.ack(*item(r))),
            ("POST", f"{WORK_ROUTES}/{{work_id}}/heartbeat", lambda r, _: work.heartbeat(*item(r), r.query)),
            ("POST", f"{WORK_ROUTES}/{{work_id}}/stop", lambda r, body: work.stop(*item(r), body)),
        ]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: a free port), and wake the sessions whose turn is open; returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        self.url = f"http://{host}:{site._server.sockets[0].getsockname()[1]}"
        woken = await self.driver.resume()
        if woken:
            log.info("resumed %d session(s) with a turn open", woken)
        return self.url

    async def stop(self) -> None:
        await self.driver.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the API's rules for every request ---------------------------------------------------------------

    @web.middleware
    async def _api_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = f"req_hl_{uuid.uuid4().hex[:24]}"
        try:
            self._authenticate(request)
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body(request_id), status=exc.status, headers={"request-id": request_id})
        except web.HTTPNotFound:
            error = ApiError(404, "not_found_error", f"{request.method} {request.path}: no such route")
            return web.json_response(error.body(request_id), status=404, headers={"request-id": request_id})
        except web.HTTPMethodNotAllowed:
            error = ApiError(405, "invalid_request_error", f"{request.method} is not allowed on {request.path}")
            return web.json_response(error.body(request_id), status=405, headers={"request-id": request_id})
        except Exception as exc:  # a bug, or a store that cannot be reached: the API's 500, and the traceback logged
            log.exception("%s %s failed (%s)", request.method, request.path, request_id)
            error = ApiError(500, "api_error", f"internal error: {type(exc).__name__}: {exc}")
            return web.json_response(error.body(request_id), status=500, headers={"request-id": request_id})

    def _authenticate(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if _a_work_route(request.path):
            if key != self.environment_key:
                raise ApiError(401, "authentication_error", "invalid environment key: a work queue takes the key "
                               "`harnesslab serve` printed (--environment-key), as a Bearer token")
        elif self.api_keys and key not in self.api_keys:
            if not (key == self.environment_key and request.path.startswith("/v1/sessions/")):  # a worker's reads and results
                raise ApiError(401, "authentication_error", "invalid x-api-key")
        if BETA not in request.headers.get("anthropic-beta", ""):
            raise invalid(f"anthropic-beta: this endpoint is in beta; send the header anthropic-beta: {BETA}")

    # -- what needs more than one resource module ---------------------------------------------------------

    async def _create_session(self, body: Any) -> dict[str, Any]:
        body = errors.body_object(body)
        initial = user_events(body["initial_events"], None) if body.get("initial_events") else []
        session = await sessions.create(self.records, body, initial, self.task_meta)
        if session["status"] == "running":
            self.driver.wake(session["id"])
        return session

    async def _send_events(self, session_id: str, body: Any) -> dict[str, Any]:
        """Append the user's events to the log and wake the brain; answer with them as the API's events. A tool
        result is checked against the log it is appended to (`expect`), so a call is answered once."""
        body = errors.body_object(body)
        errors.known_fields(body, {"events"})
        while True:
            log = await self.records.log("session", session_id)
            worker = log[0].data.get(ENVIRONMENT_TYPE) == "self_hosted"
            appended = user_events(body.get("events"), awaiting_worker(session_id, log) if worker else None)
            try:
                length = await self.store.append(session_id, appended, expect=len(log))
                break
            except Conflict:  # the brain (or another client) appended first: check against the log as it is now
                continue
        self.driver.wake(session_id)
        projected = project(session_id, await self.store.events(session_id))
        return {"data": [e for e in projected if length - len(appended) <= e["harnesslab"]["position"] < length]}

    async def _list_events(self, session_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        every = project(session_id, await self.records.log("session", session_id))
        types = query.getall("types[]", [])  # type: ignore[attr-defined]
        every = [e for e in every if not types or e["type"] in types]
        order = query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise invalid(f"order: expected 'asc' or 'desc', got {order!r}")
        if query.get("page"):
            event_place(session_id, query["page"], "page")
        chosen, next_page = page(every[::-1] if order == "desc" else every, lambda e: e["id"], query.get("page"),
                                 errors.limit(query, most=1000))
        return listing(chosen, next_page)

    async def _stream_events(self, request: web.Request) -> web.StreamResponse:
        session_id = request.match_info["id"]
        await self.records.log("session", session_id)
        return await stream(request, self.store, session_id, request.headers.get("Last-Event-ID"))


def _a_work_route(path: str) -> bool:
    parts = path.split("/")  # "", v1, environments, {id}, work, ...
    return len(parts) > 4 and parts[1:3] == ["v1", "environments"] and parts[4] == "work"


def _json_handler(answer: Callable[[web.Request, Any], Awaitable[Any]], with_body: bool) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response(await answer(request, await _body(request) if with_body else None))
    return handle


async def _body(request: web.Request) -> Any:
    """The request's JSON body; None if it has none (ack and heartbeat send none)."""
    if not await request.read():
        return None
    try:
        return await request.json()
    except ValueError:
        raise invalid("the request body is not valid JSON") from None


def serving(name: str, part: Any) -> Any:
    """A part as a served session uses it (build_parts' `wrap`): the store watched, so streams hear of appends;
    the sandboxes offering the agent toolset; the offline brain speaking it through its dialect."""
    from managed.dialect import for_toolset
    from managed.toolset import ToolsetProvider

    if name == "store":
        return WatchedStore(part)
    if name == "sandbox":
        return ToolsetProvider(part)
    return for_toolset(part) if name == "model" else part
