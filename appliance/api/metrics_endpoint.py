"""`GET /metrics` (Prometheus text format) and the middleware that counts and times requests.

The numbers span every project, so only the local socket (the host's operators) or an admin
token may read them: a member gets 403, an anonymous caller 401.
"""
from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from appliance.api.util import client_source, ctx_of, public
from appliance.errors import Forbidden
from appliance.identity.throttle import LOCAL_SOURCE

_SERVICES = {"compute": "compute", "volume": "volume", "network": "network", "image": "image",
             "swift": "object", "v1": "object", "info": "object", "identity": "identity",
             "v3": "identity", "monostack": "monostack", "metrics": "monostack",
             "healthz": "monostack"}


def service_of(path: str) -> str:
    return _SERVICES.get(path.lstrip("/").split("/", 1)[0], "other")


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    """Counted by service, method and status; latency by service. Labels come from a fixed
    set, never from the path, so a client cannot grow the registry."""
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = ctx_of(request).metrics
        service = service_of(request.path)
        method = request.method if request.method in _METHODS else "OTHER"
        metrics.api_requests.labels(service, method, str(status)).inc()
        metrics.api_latency.labels(service).observe(time.perf_counter() - began)


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "COPY", "OPTIONS"}


@public
async def metrics(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    if client_source(request) != LOCAL_SOURCE:
        auth = ctx.identity.validate(request.headers.get("X-Auth-Token"))
        if not auth.is_admin:
            raise Forbidden("Metrics span every project: an admin token or the local socket.")
    body = await ctx.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
