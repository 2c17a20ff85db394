"""Keystone's application credentials API, and the `application_credential` auth method.

    POST   /v3/users/{user_id}/application_credentials        → 201, the secret shown once
    GET    /v3/users/{user_id}/application_credentials[?name=]
    GET    /v3/users/{user_id}/application_credentials/{id}
    DELETE /v3/users/{user_id}/application_credentials/{id}   → 204 (its tokens end too)

A user manages only their own (an admin may list and delete anyone's); `openstack application
credential create` and `OS_AUTH_TYPE=v3applicationcredential` use these.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from appliance.api.schemas import identity as schemas
from appliance.api.util import auth_of, ctx_of
from appliance.api.validation import valid_body
from appliance.errors import BadRequest, Forbidden
from appliance.identity.app_credentials import ApplicationCredential
from appliance.identity.service import iso_from_epoch


def _base(request: web.Request) -> str:
    return ctx_of(request).config.api.base_url + "/identity/v3"


def view(request: web.Request, c: ApplicationCredential) -> dict[str, Any]:
    ident = ctx_of(request).identity
    roles = [r for rid in c.roles if (r := ident.roles.get(rid)) is not None]
    return {"id": c.id, "name": c.name, "description": c.description or None,
            "user_id": c.user_id, "project_id": c.project_id,
            "expires_at": iso_from_epoch(c.expires_at) if c.expires_at else None,
            "unrestricted": c.unrestricted, "system": None, "access_rules": [],
            "roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in roles],
            "links": {"self": f"{_base(request)}/users/{c.user_id}/application_credentials/"
                              f"{c.id}"}}


def _owner(request: web.Request) -> str:
    """The path's user: the caller themself, or anyone's for an admin (who still cannot
    create one for somebody else)."""
    uid = request.match_info["user_id"]
    auth = auth_of(request)
    if uid != auth.user_id and not auth.is_admin:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "identity:application_credentials.")
    return uid


def _expiry(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest("Invalid input for field 'expires_at': an ISO 8601 time or null.")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"Invalid input for field 'expires_at': {value!r}.") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _role_names(request: web.Request, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 50 or not all(
            isinstance(r, dict) and isinstance(r.get("id", r.get("name")), str) for r in value):
        raise BadRequest("Invalid input for field 'roles': a list of {\"id\"} or {\"name\"}.")
    ident = ctx_of(request).identity
    names = []
    for r in value:
        role = ident.roles.get(r["id"]) if "id" in r else ident.role_by_name(r["name"])
        if role is None:
            raise Forbidden(f"Cannot grant roles the user does not hold: {r.get('id') or r.get('name')}.")
        names.append(role.name)
    return names


async def create(request: web.Request) -> web.Response:
    uid = _owner(request)
    if uid != auth_of(request).user_id:
        raise Forbidden("Application credentials are made by their own user.")
    body = await valid_body(request, schemas.APP_CREDENTIAL_CREATE)
    name, secret = body["name"], body.get("secret")
    description, unrestricted = body.get("description") or "", body.get("unrestricted", False)
    cred, secret = await ctx_of(request).identity.create_app_credential(
        auth_of(request), name=name, secret=secret,
        role_names=_role_names(request, body.get("roles")), description=description,
        expires_at=_expiry(body.get("expires_at")), unrestricted=unrestricted)
    return web.json_response({"application_credential": {**view(request, cred),
                                                         "secret": secret}}, status=201)


async def list_all(request: web.Request) -> web.Response:
    uid = _owner(request)
    creds = ctx_of(request).identity.app_credentials.of_user(uid)
    name = request.query.get("name")
    return web.json_response({"application_credentials": [
        view(request, c) for c in creds if name is None or c.name == name],
        "links": {"self": str(request.url), "previous": None, "next": None}})


async def show(request: web.Request) -> web.Response:
    uid = _owner(request)
    cred = ctx_of(request).identity.app_credentials.require_own(
        uid, request.match_info["cred_id"])
    return web.json_response({"application_credential": view(request, cred)})


async def delete(request: web.Request) -> web.Response:
    uid = _owner(request)
    await ctx_of(request).identity.delete_app_credential(uid, request.match_info["cred_id"])
    return web.Response(status=204)


def routes(prefix: str) -> list[web.RouteDef]:
    base = prefix + "/users/{user_id}/application_credentials"
    return [web.post(base, create), web.get(base, list_all),
            web.get(base + "/{cred_id}", show), web.delete(base + "/{cred_id}", delete)]
