"""The aiohttp application: middleware once, then every component's routes."""
from __future__ import annotations

import asyncio
import importlib
import json
import time

from aiohttp import WSMsgType, web

from appliance.api import identity
from appliance.api.listeners import connection_middleware
from appliance.api.audit_trail import audit_middleware, list_audit
from appliance.api.metrics_endpoint import metrics, metrics_middleware
from appliance.api.middleware import auth_middleware, error_middleware, request_id_middleware
from appliance.api.schemas.types import PAGE
from appliance.api.util import LOCAL_SOURCE, auth_of, client_source, ctx_of, json_body, public
from appliance.api.validation import valid_query
from appliance.component import ApplianceContext
from appliance.errors import Forbidden, Unauthorized
from appliance.identity.policy import owns


@public
async def root(request: web.Request) -> web.Response:
    return await identity.versions(request)


@public
async def health(request: web.Request) -> web.Response:
    """Healthy or not for anyone (a load balancer's probe); which components and why only for
    the local socket or an admin token: the details describe the whole cloud."""
    ctx = ctx_of(request)
    components = {c.name: c.health() for c in ctx.components.running()}
    failed = request.app.get("failed_components", {})
    for name, why in failed.items():
        components[name] = f"failed: {why}"
    # A component that runs but cannot do its job (its hypervisor or disk is away) says
    # "degraded: why" in its health line; the appliance is then degraded too.
    hurt = failed or any(h.startswith(("degraded", "failed")) for h in components.values())
    status = "ok" if not hurt else "degraded"
    if not _sees_health_details(request):
        return web.json_response({"status": status})
    return web.json_response({"status": status, "components": components,
                              "uptime": time.time() - request.app["started_at"]})


def _sees_health_details(request: web.Request) -> bool:
    if client_source(request) == LOCAL_SOURCE:
        return True
    try:
        return ctx_of(request).identity.validate(request.headers.get("X-Auth-Token")).is_admin
    except Unauthorized:
        return False


async def list_events(request: web.Request) -> web.Response:
    auth = auth_of(request)
    valid_query(request, PAGE)  # limit: digits only ("abc" was a 500)
    limit = min(int(request.query.get("limit", "100")), 2000)
    events = ctx_of(request).events.recent(limit, None if auth.is_admin else auth.project_id)
    return web.json_response({"events": [_event(e) for e in events]})


def _event(e) -> dict:
    return {"id": e.id, "seq": e.seq, "time": e.time, "kind": e.kind,
            "resource_type": e.resource_type, "resource_id": e.resource_id,
            "project_id": e.project_id, "message": e.message, "data": e.data}


async def event_stream(request: web.Request) -> web.WebSocketResponse:
    """Live state changes for the TUI: one JSON event per message, scoped to the caller."""
    auth = auth_of(request)
    bus = ctx_of(request).events
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    queue = bus.subscribe()
    request.app["websockets"].add(ws)

    async def pump() -> None:
        while True:
            event = await queue.get()
            if event.project_id is None or owns(auth, event.project_id):
                await ws.send_str(json.dumps(_event(event)))

    task = asyncio.create_task(pump())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        task.cancel()
        bus.unsubscribe(queue)
        request.app["websockets"].discard(ws)
    return ws


async def whoami(request: web.Request) -> web.Response:
    auth = auth_of(request)
    if auth is None:
        raise Forbidden("no identity")
    return web.json_response({"user_id": auth.user_id, "user_name": auth.user_name,
                              "project_id": auth.project_id, "project_name": auth.project_name,
                              "roles": sorted(auth.roles), "expires_at": auth.expires_at})


async def status_counts(request: web.Request) -> web.Response:
    """How many records each state table holds (`monostack status`); admin only: the counts
    span every project."""
    from appliance.api.util import authorize
    authorize(request, "monostack:status")
    store = ctx_of(request).store
    counts = {name: store.count(name) for name in store.table_names()}
    return web.json_response({"counts": counts})


async def backup(request: web.Request) -> web.Response:
    """A consistent online snapshot of state into the configured backup directory, under a
    name the daemon makes up: the API takes no path (an admin token is not root on the host)."""
    from appliance.api.util import authorize
    from appliance.errors import BadRequest
    from appliance.state.backup import backup_store
    authorize(request, "monostack:backup")
    if await request.read():
        body = await json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        if "path" in body:
            raise BadRequest("Invalid input for field 'path': backups go to the appliance's "
                             "configured backup directory; copy them from there on the host "
                             "(monostack backup PATH).")
        if body:
            raise BadRequest(f"Invalid input for field '{sorted(body)[0]}': "
                             "a backup takes no parameters.")
    ctx = ctx_of(request)
    meta = await backup_store(ctx.store, ctx.config.backups)
    return web.json_response({"backup": meta}, status=201)


def build_app(ctx: ApplianceContext) -> web.Application:
    app = web.Application(
        middlewares=[connection_middleware, metrics_middleware, request_id_middleware,
                     audit_middleware, error_middleware, auth_middleware],
        client_max_size=ctx.config.api.max_body_bytes,
    )
    app["ctx"] = ctx
    app["started_at"] = time.time()
    app["websockets"] = set()
    app["failed_components"] = {}
    app.router.add_routes([
        web.get("/", root),
        web.get("/healthz", health),
        web.get("/metrics", metrics),
        web.get("/monostack/audit", list_audit),
        web.get("/monostack/events", list_events),
        web.get("/monostack/events/stream", event_stream),
        web.get("/monostack/whoami", whoami),
        web.get("/monostack/status", status_counts),
        web.post("/monostack/backup", backup),
    ])
    app.router.add_routes(identity.routes())
    for component in ctx.components.running():
        app.router.add_routes(routes_of(component.name))
    return app


#: Each component's API module, by component name: the HTTP layer belongs to api/, the
#: components know nothing of it. Only the routes of components that run are served, and
#: only their modules are imported (a daemon without network never loads pyroute2 on its way
#: to answering).
ROUTES: dict[str, str] = {
    "image": "appliance.api.image",
    "volume": "appliance.api.volume",
    "network": "appliance.api.network",
    "compute": "appliance.api.compute",
    "object": "appliance.api.objects",
}


def routes_of(component: str) -> list[web.RouteDef]:
    return importlib.import_module(ROUTES[component]).routes()
