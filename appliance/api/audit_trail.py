"""Every mutating call (and every login) into the audit trail (appliance/audit.py), and the
admins' query: `GET /monostack/audit?since=&until=&user_id=&project_id=&outcome=&action=&limit=`.

The event is built from the route and the authenticated identity, never from the body, so no
password, secret or token can reach it; query strings are left out too (a TempURL's
signature lives there).
"""
from __future__ import annotations

from aiohttp import web

from appliance.api.metrics_endpoint import service_of
from appliance.api.util import authorize, client_source, ctx_of, query_int
from appliance.audit import event
from appliance.errors import BadRequest
from appliance.identity.throttle import LOCAL_SOURCE

AUDITED = {"POST", "PUT", "PATCH", "DELETE", "COPY"}
_ACTIONS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete",
            "COPY": "create/copy"}


def _action(method: str, canonical: str) -> str:
    if canonical.endswith("/auth/tokens"):
        return "authenticate" if method == "POST" else "delete/token"
    if canonical.endswith("/action"):
        return "update/action"
    return _ACTIONS.get(method, method.lower())


def _target(request: web.Request, service: str) -> tuple[str, str | None, str]:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    canonical = resource.canonical if resource is not None else request.path
    words = [w for w in canonical.split("/") if w and not w.startswith("{")
             and w not in ("v2.1", "v2.0", "v3", "v1", "v2", service, "identity", "swift")]
    values = [v for k, v in info.items() if k != "project_id"] if route is not None else []
    target_id = "/".join(values) if service == "object" else (values[0] if values else None)
    kind = f"service/{service}/{words[0] if words else 'root'}"
    return kind, target_id, canonical


def _authenticated(request: web.Request, response: web.StreamResponse | None):
    """A login carries no token in: who it was is the token it minted (the body, with the
    password, is never read)."""
    subject = response.headers.get("X-Subject-Token") if response is not None else None
    if not subject or request.method != "POST":
        return None
    try:
        return ctx_of(request).identity.validate(subject)
    except Exception:  # noqa: BLE001 — an audit record never fails the request
        return None


@web.middleware
async def audit_middleware(request: web.Request, handler):
    if request.method not in AUDITED:
        return await handler(request)
    status = 500
    response = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        trail = ctx_of(request).audit
        if trail is not None:
            service = service_of(request.path)
            target_type, target_id, canonical = _target(request, service)
            auth = request.get("auth") or _authenticated(request, response)
            source = client_source(request)
            trail.record(event(
                action=_action(request.method, canonical),
                outcome="success" if status < 400 else "failure", status=status,
                request_id=request.get("request_id", ""),
                user_id=auth.user_id if auth else None,
                user_name=auth.user_name if auth else None,
                project_id=auth.project_id if auth else None,
                roles=sorted(auth.roles) if auth else [],
                source="local socket" if source == LOCAL_SOURCE else source,
                service=service, target_type=target_type, target_id=target_id,
                method=request.method, path=request.path))


async def list_audit(request: web.Request) -> web.Response:
    """Admins only (over TCP and the local socket alike: operators on the socket are not
    thereby auditors)."""
    authorize(request, "monostack:audit")
    trail = ctx_of(request).audit
    if trail is None:
        return web.json_response({"events": []})
    q = request.query
    for key in ("since", "until", "user_id", "project_id", "outcome", "action"):
        if key in q and (len(q[key]) > 255 or not q[key].isprintable()):
            raise BadRequest(f"Invalid input for field '{key}'.")
    events = await trail.query(since=q.get("since"), until=q.get("until"),
                               user_id=q.get("user_id"), project_id=q.get("project_id"),
                               outcome=q.get("outcome"), action=q.get("action"),
                               limit=query_int(request, "limit", 100, 1, 1000) or 100)
    return web.json_response({"events": events})
