"""Small helpers every API module shares: reading bodies, the auth context, public routes."""
from __future__ import annotations

import json
import re
import socket
from typing import Any, Callable, TypeVar

import orjson
from aiohttp import web

from appliance.component import ApplianceContext
from appliance.errors import BadRequest, PayloadTooLarge
from appliance.identity.policy import AuthContext, enforce
from appliance.identity.throttle import LOCAL_SOURCE

H = TypeVar("H", bound=Callable[..., Any])
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def public(handler: H) -> H:
    """Mark a handler as reachable without a token (discovery, login, health)."""
    handler.__monostack_public__ = True  # type: ignore[attr-defined]
    return handler


def is_public(handler: Any) -> bool:
    return bool(getattr(handler, "__monostack_public__", False))


def json_answer(body: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded by orjson: the standard library's encoder was a fifth of a
    1,000-server listing's time. Strings, numbers, enums and nested dicts/lists only, as every
    API body is; a non-string key is written as its string, as json.dumps does."""
    return web.Response(body=json_bytes(body), status=status,
                        content_type="application/json", charset="utf-8")


def json_bytes(body: Any) -> bytes:
    """A body encoded as json_answer encodes it (for answers assembled from encoded parts)."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def client_source(request: web.Request) -> str:
    """Where a request came from: LOCAL_SOURCE for the unix socket, else the peer's address.

    Read from the connection itself; forwarded-for headers are client input and never trusted.
    """
    transport = request.transport
    if transport is None:
        return "gone"
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        return LOCAL_SOURCE
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"


def ctx_of(request: web.Request) -> ApplianceContext:
    return request.app["ctx"]


def auth_of(request: web.Request) -> AuthContext:
    return request["auth"]


def authorize(request: web.Request, action: str, *, target_project_id: str | None = None,
              target_user_id: str | None = None) -> AuthContext:
    auth = auth_of(request)
    enforce(auth, action, target_project_id=target_project_id, target_user_id=target_user_id)
    return auth


#: request key holding an already parsed body: a bulk create hands each item to the ordinary
#: create handler this way.
BODY_OVERRIDE = "monostack.body"


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's parser takes them): refused as malformed."""
    raise ValueError(f"{name} is not a JSON value")


async def json_body(request: web.Request, key: str | None = None) -> Any:
    """The parsed JSON body (and `body[key]` when a key is named), or a clear 400."""
    if BODY_OVERRIDE in request:
        return _keyed(request[BODY_OVERRIDE], key)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge("Request body is too large.") from exc
    if not raw:
        raise BadRequest("The request body is empty; JSON was expected.")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"Malformed JSON in request body: {exc}") from exc
    if _SURROGATE_ESCAPE.search(raw):
        # "\ud800" alone is valid JSON but no valid text: it would fail later, when a name is
        # encoded for a file, a hash or a log line, as a 500. Refuse it here, once.
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequest("The request body holds a lone UTF-16 surrogate (\\ud800-\\udfff); "
                             "strings must be valid Unicode.") from exc
    return _keyed(body, key)


def _keyed(body: Any, key: str | None) -> Any:
    if key is None:
        return body
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadRequest(f"The request body must be an object with a '{key}' object.")
    return body[key]


async def json_object(request: web.Request) -> dict[str, Any]:
    """The parsed JSON body when it is an object; anything else is a clear 400."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def object_field(body: dict[str, Any], key: str) -> dict[str, Any]:
    """`body[key]` when it is an object (missing → {}), else a 400 naming the field."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{key}' must be an object.")
    return value


def query_bool(value: str | None) -> bool | None:
    if value is None or value.lower() in ("none", ""):
        return None
    return value.lower() in ("1", "true", "yes", "on")


def query_int(request: web.Request, name: str, default: int | None = None,
              minimum: int = 0, maximum: int = 10_000) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be between {minimum} and {maximum}")
    return value


def paginate(items: list[Any], request: web.Request, key: Callable[[Any], str]) -> list[Any]:
    """limit/marker paging over an already sorted list (marker = id of the last item seen)."""
    marker = request.query.get("marker")
    if marker:
        ids = [key(i) for i in items]
        if marker not in ids:
            from appliance.errors import BadRequest as _BR
            raise _BR(f"marker [{marker}] not found")
        items = items[ids.index(marker) + 1:]
    limit = query_int(request, "limit", None, 0, 100_000)
    return items if limit is None else items[:limit]
