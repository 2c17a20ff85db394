"""The aiohttp application: middleware once, then every component's routes."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Callable

from aiohttp import WSMsgType, web

from appliance.api import compute, identity, image, network, objects, volume
from appliance.api.middleware import auth_middleware, error_middleware, request_id_middleware
from appliance.api.util import auth_of, ctx_of, public
from appliance.component import ApplianceContext
from appliance.errors import Forbidden


@public
async def root(request: web.Request) -> web.Response:
    return await identity.versions(request)


@public
async def health(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    components = {name: getattr(c, "health", lambda: "ok")() for name, c in ctx.components.items()}
    failed = request.app.get("failed_components", {})
    for name, why in failed.items():
        components[name] = f"failed: {why}"
    # A component that runs but cannot do its job (its hypervisor or disk is away) says
    # "degraded: why" in its health line; the appliance is then degraded too.
    hurt = failed or any(h.startswith(("degraded", "failed")) for h in components.values())
    status = "ok" if not hurt else "degraded"
    return web.json_response({"status": status, "components": components,
                              "uptime": time.time() - request.app["started_at"]})


async def list_events(request: web.Request) -> web.Response:
    auth = auth_of(request)
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
            if auth.is_admin or event.project_id in (None, auth.project_id):
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
    """A consistent online snapshot of state (and metadata) into a path on the host."""
    from pathlib import Path

    from appliance.api.util import authorize, json_body
    from appliance.errors import BadRequest
    from appliance.state.backup import backup_store
    authorize(request, "monostack:backup")
    body = await json_body(request)
    path = body.get("path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest("backup needs an absolute 'path' on the appliance host")
    meta = await backup_store(ctx_of(request).store, Path(path))
    return web.json_response({"backup": {"path": path, **meta}}, status=201)


def build_app(ctx: ApplianceContext) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, auth_middleware],
        client_max_size=ctx.config.api.max_body_bytes,
    )
    app["ctx"] = ctx
    app["started_at"] = time.time()
    app["websockets"] = set()
    app["failed_components"] = {}
    app.router.add_routes([
        web.get("/", root),
        web.get("/healthz", health),
        web.get("/monostack/events", list_events),
        web.get("/monostack/events/stream", event_stream),
        web.get("/monostack/whoami", whoami),
        web.get("/monostack/status", status_counts),
        web.post("/monostack/backup", backup),
    ])
    app.router.add_routes(identity.routes())
    for name in ctx.components:
        app.router.add_routes(ROUTES[name]())
    return app


#: Each component's route table, by component name: the HTTP layer belongs to api/, the
#: components know nothing of it. Only the routes of components that run are served.
ROUTES: dict[str, Callable[[], list[web.RouteDef]]] = {
    "image": image.routes,
    "volume": volume.routes,
    "network": network.routes,
    "compute": compute.routes,
    "object": objects.routes,
}
