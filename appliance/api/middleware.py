"""Request id, errors → HTTP (the one mapping), and token authentication.

Error bodies follow the shape each OpenStack service uses, chosen by path prefix, so the real
clients print our messages instead of a parse failure.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import quote

from aiohttp import web

from appliance import request_context
from appliance.api.util import client_source, ctx_of, is_public
from appliance.errors import BadRequest, MonostackError, PayloadTooLarge, QuotaExceeded

log = logging.getLogger("monostack.api")

_NOVA_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
              409: "conflictingRequest", 413: "overLimit", 429: "overLimit"}


def _service_of(path: str) -> str:
    head = path.lstrip("/").split("/", 1)[0]
    return {"compute": "compute", "volume": "volume", "network": "network", "image": "image",
            "swift": "object", "v1": "object", "info": "object", "identity": "identity",
            "v3": "identity"}.get(head, "monostack")


def error_response(path: str, exc: MonostackError) -> web.Response:
    status, message = exc.status, exc.message
    service = _service_of(path)
    if service in ("compute", "volume"):
        key = _NOVA_KEYS.get(status, "computeFault" if service == "compute" else "volumeFault")
        body: dict = {key: {"code": status, "message": message}}
    elif service == "network":
        kind = type(exc).__name__
        if isinstance(exc, QuotaExceeded):  # neutron-lib's OverQuota is a Conflict
            status, kind = 409, "OverQuota"
        body = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    elif service == "object":
        page = f"<html><h1>{exc.title}</h1><p>{_html(message)}</p></html>"
        headers = {"Content-Type": "text/html; charset=UTF-8"}
        if status == 401:  # Swift names the account as the realm, %-quoted
            account = path.split("/v1/", 1)[1].split("/", 1)[0] if "/v1/" in path else "unknown"
            headers["WWW-Authenticate"] = f'Swift realm="{quote(account)}"'
        return web.Response(status=status, body=page.encode(), headers=headers)
    else:
        body = {"error": {"code": status, "title": exc.title, "message": message}}
    headers = {}
    if status == 401 and service == "identity":
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    return web.json_response(body, status=status, headers=headers)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    swift = _service_of(request.path) == "object"
    # Swift's clients and operators read the time back out of a `tx…` transaction id.
    if swift:
        # imported here: the Swift layer (and the object engine under it) costs a start
        # that runs no object storage
        from appliance.objects.swift import trans_id
        request_id = trans_id()
    else:
        request_id = "req-" + str(uuid.uuid4())
    request["request_id"] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["x-openstack-request-id"] = request_id
        if swift:
            exc.headers["X-Trans-Id"] = request_id
        raise
    response.headers["x-openstack-request-id"] = request_id
    if request.path.startswith("/compute"):
        response.headers["X-Compute-Request-Id"] = request_id
    if swift:
        response.headers["X-Trans-Id"] = request_id
        response.headers["X-Openstack-Request-Id"] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except MonostackError as exc:
        if exc.status >= 500:
            log.error("request failed", extra={"path": request.path, "error": str(exc),
                                               "request_id": request.get("request_id")})
        return error_response(request.path, exc)
    except web.HTTPRequestEntityTooLarge:
        return error_response(request.path, PayloadTooLarge("Request body is too large."))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.status in (404, 405):
            err = MonostackError(exc.reason)
            err.status, err.title = exc.status, exc.reason
            return error_response(request.path, err)
        raise
    except ConnectionResetError:
        # The client reset or closed its connection mid-request (reading the body fails): no
        # answer can reach it and nothing of ours went wrong — a line, not aiohttp's ERROR
        # traceback per dropped upload. Anything else resetting (the client still there) is
        # raised as before.
        if request.transport is not None and not request.transport.is_closing():
            raise
        log.info("client went away mid-request", extra={
            "path": request.path, "request_id": request.get("request_id")})
        return error_response(request.path, BadRequest("The client closed the connection."))
    except asyncio.CancelledError:
        raise
    except Exception:  # the one place a bug becomes a 500 instead of a dropped connection
        log.exception("unexpected error", extra={"path": request.path,
                                                 "request_id": request.get("request_id")})
        return error_response(request.path, MonostackError(
            "An unexpected error prevented the server from fulfilling your request."))


@web.middleware
async def auth_middleware(request: web.Request, handler):
    info = request.match_info
    route_handler = getattr(info, "handler", None)
    if route_handler is not None and is_public(route_handler):
        return await handler(request)
    if isinstance(info, web.UrlMappingMatchInfo) and info.http_exception is not None:
        return await handler(request)  # 404/405 answered without revealing more
    token = request.headers.get("X-Auth-Token")
    auth = request["auth"] = ctx_of(request).identity.validate(token)
    # what the request causes (instance actions, audit) names it, its user and project
    mark = request_context.set_current(request_context.RequestInfo(
        request_id=request.get("request_id", ""), user_id=auth.user_id,
        project_id=auth.project_id, source=client_source(request)))
    try:
        return await handler(request)
    finally:
        request_context.reset(mark)
