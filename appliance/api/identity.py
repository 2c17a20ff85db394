"""Keystone v3 subset: discovery, tokens, users, projects, roles, assignments.

Served both under /identity/v3 (the catalog URL) and /v3 (so an auth_url of the bare host
works too).
"""
from __future__ import annotations

from aiohttp import web

from appliance.api import identity_appcreds, identity_catalog
from appliance.api.catalog import build_catalog
from appliance.api.schemas import identity as schemas
from appliance.api.util import (
    auth_of, authorize, client_source, ctx_of, json_body, object_field, public, query_bool,
)
from appliance.api.validation import valid_body
from appliance.errors import BadRequest, Forbidden, NotFound, Unauthorized
from appliance.identity.domains import DOMAIN_FIELDS, Domain
from appliance.identity.policy import owns
from appliance.identity.records import (
    DEFAULT_DOMAIN_ID, SYSTEM_SCOPE, Project, Role, User,
)
from appliance.identity.service import (
    PROJECT_FIELDS, USER_FIELDS, iso_from_epoch, check_types,
)

VERSION_ID = "v3.14"


def _base(request: web.Request) -> str:
    return ctx_of(request).config.api.base_url


def _version(request: web.Request) -> dict:
    return {"id": VERSION_ID, "status": "stable", "updated": "2024-04-01T00:00:00Z",
            "links": [{"rel": "self", "href": _base(request) + "/identity/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


@public
async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": {"values": [_version(request)]}}, status=300)


@public
async def version_v3(request: web.Request) -> web.Response:
    return web.json_response({"version": _version(request)})


# -- tokens -------------------------------------------------------------------------------------

def _token_body(request: web.Request, token, methods=("password",)) -> dict:
    ctx = ctx_of(request)
    ident = ctx.identity
    user = ident.users.require(token.user_id)
    body = {
        "methods": list(methods),
        "user": {"id": user.id, "name": user.name, "domain": _domain_ref(request, user.domain_id),
                 "password_expires_at": None},
        "audit_ids": [token.audit_id],
        "expires_at": iso_from_epoch(token.expires_at),
        "issued_at": iso_from_epoch(token.issued_at),
    }
    if token.app_cred_id and (cred := ident.app_credentials.get(token.app_cred_id)):
        body["methods"] = ["application_credential"]
        body["application_credential"] = {"id": cred.id, "name": cred.name,
                                          "restricted": not cred.unrestricted}
    if token.project_id:
        project = ident.projects.require(token.project_id)
        roles = ident.token_roles(token)  # current, not as minted
        body["project"] = {"id": project.id, "name": project.name,
                           "domain": _domain_ref(request, project.domain_id)}
        body["is_domain"] = False
        body["roles"] = [{"id": r.id, "name": r.name} for r in roles]
        body["catalog"] = build_catalog(ctx, project.id)
    elif token.system:
        body["system"] = {"all": True}
        body["roles"] = [{"id": r.id, "name": r.name} for r in ident.token_roles(token)]
        body["catalog"] = build_catalog(ctx, None)
    # an unscoped token carries no roles and no catalog: it can only be rescoped (Keystone)
    return {"token": body}


def _domain_ref(request: web.Request, domain_id: str) -> dict:
    domain = ctx_of(request).identity.domains.get(domain_id)
    return {"id": domain_id, "name": domain.name if domain else domain_id}


def _str_or_none(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{what} must be a string.")
    return value


@public
async def issue_token(request: web.Request) -> web.Response:
    body = await json_body(request, "auth")
    identity = object_field(body, "identity")
    methods = identity.get("methods") or []
    if not isinstance(methods, list):
        raise BadRequest("identity.methods must be a list.")
    if "password" not in methods:
        if "token" in methods:
            return await _rescope(request, body)
        if "application_credential" in methods:
            return await _app_credential_login(request, identity)
        raise BadRequest("Only the password, token and application_credential methods are "
                         "supported.")
    user = object_field(object_field(identity, "password"), "user")
    password = user.get("password")
    if not isinstance(password, str):
        raise BadRequest("Expecting to find password in user.")
    domain = object_field(user, "domain")
    unscoped = body.get("scope") == "unscoped"
    system = _system_scope(body)
    project = {} if unscoped else object_field(object_field(body, "scope"), "project")
    project_domain = object_field(project, "domain")
    secret, token = await ctx_of(request).identity.authenticate(
        user_name=_str_or_none(user.get("name"), "user.name"),
        user_id=_str_or_none(user.get("id"), "user.id"), password=password,
        project_name=_str_or_none(project.get("name"), "project.name"),
        project_id=_str_or_none(project.get("id"), "project.id"),
        domain=_str_or_none(domain.get("id") or domain.get("name"), "domain"),
        unscoped=unscoped, system=system,
        project_domain=_str_or_none(project_domain.get("id") or project_domain.get("name"),
                                    "project.domain"),
        source=client_source(request))
    return web.json_response(_token_body(request, token), status=201,
                             headers={"X-Subject-Token": secret})


async def _app_credential_login(request: web.Request, identity: dict) -> web.Response:
    cred = object_field(identity, "application_credential")
    user = object_field(cred, "user")
    secret = cred.get("secret")
    if not isinstance(secret, str):
        raise BadRequest("Expecting to find secret in application_credential.")
    secret_token, token = await ctx_of(request).identity.authenticate_app_credential(
        cred_id=_str_or_none(cred.get("id"), "application_credential.id"),
        name=_str_or_none(cred.get("name"), "application_credential.name"),
        user_id=_str_or_none(user.get("id"), "user.id"),
        user_name=_str_or_none(user.get("name"), "user.name"), secret=secret,
        source=client_source(request))
    return web.json_response(_token_body(request, token, ("application_credential",)),
                             status=201, headers={"X-Subject-Token": secret_token})


def _system_scope(body: dict) -> bool:
    """`"scope": {"system": {"all": true}}`: Keystone's only system scope."""
    scope = body.get("scope")
    if not isinstance(scope, dict) or "system" not in scope:
        return False
    if scope["system"] != {"all": True}:
        raise BadRequest("Invalid input for field 'scope.system': only {\"all\": true}.")
    return True


async def _rescope(request: web.Request, body: dict) -> web.Response:
    """Token method: a new token for another project of the same user (project switcher)."""
    ident = ctx_of(request).identity
    old = _str_or_none(object_field(object_field(body, "identity"), "token").get("id"),
                       "token.id") or request.headers.get("X-Auth-Token")
    project = object_field(object_field(body, "scope"), "project")
    _str_or_none(project.get("id"), "project.id")
    _str_or_none(project.get("name"), "project.name")
    secret, token = await ident.rescope(old, project_id=project.get("id"),
                                        project_name=project.get("name"),
                                        system=_system_scope(body))
    return web.json_response(_token_body(request, token, ("token",)), status=201,
                             headers={"X-Subject-Token": secret})


def _subject(request: web.Request):
    subject = request.headers.get("X-Subject-Token")
    if not subject:
        raise BadRequest("X-Subject-Token header is required.")
    ident = ctx_of(request).identity
    try:
        sub_ctx = ident.validate(subject)
    except Unauthorized as exc:
        raise NotFound("Could not find token.") from exc
    auth = auth_of(request)
    if not auth.is_admin and sub_ctx.user_id != auth.user_id:
        raise Forbidden("You are not authorized to validate that token.")
    return subject


async def validate_token(request: web.Request) -> web.Response:
    subject = _subject(request)
    token = ctx_of(request).identity.token_record(subject)
    return web.json_response(_token_body(request, token),
                             headers={"X-Subject-Token": subject})


async def check_token(request: web.Request) -> web.Response:
    _subject(request)
    return web.Response(status=200)


async def revoke_token(request: web.Request) -> web.Response:
    subject = _subject(request)
    await ctx_of(request).identity.revoke(subject)
    return web.Response(status=204)


async def auth_projects(request: web.Request) -> web.Response:
    auth = auth_of(request)
    projects = ctx_of(request).identity.projects_of(auth.user_id)
    return web.json_response({"projects": [_project(request, p) for p in projects if p.enabled],
                              "links": _links(request)})


async def auth_catalog(request: web.Request) -> web.Response:
    auth = auth_of(request)
    if not auth.project_id:
        raise Forbidden("A project-scoped token is required to produce a service catalog.")
    return web.json_response({"catalog": build_catalog(ctx_of(request), auth.project_id)})


# -- users --------------------------------------------------------------------------------------

def _links(request: web.Request) -> dict:
    return {"self": str(request.url), "previous": None, "next": None}


def _user(request: web.Request, u: User) -> dict:
    return {"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
            "default_project_id": u.default_project_id, "email": u.email,
            "description": u.description, "password_expires_at": None, "options": {},
            "links": {"self": f"{_base(request)}/identity/v3/users/{u.id}"}}


def _project(request: web.Request, p: Project) -> dict:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id, "enabled": p.enabled,
            "description": p.description, "is_domain": False, "parent_id": p.domain_id,
            "tags": [], "options": {},
            "links": {"self": f"{_base(request)}/identity/v3/projects/{p.id}"}}


def _role(request: web.Request, r: Role) -> dict:
    return {"id": r.id, "name": r.name, "domain_id": None, "description": None, "options": {},
            "links": {"self": f"{_base(request)}/identity/v3/roles/{r.id}"}}


async def list_users(request: web.Request) -> web.Response:
    authorize(request, "identity:list_users")
    name, dom = request.query.get("name"), request.query.get("domain_id")
    users = ctx_of(request).identity.users.list(
        lambda u: (name is None or u.name == name) and (dom is None or u.domain_id == dom))
    enabled = query_bool(request.query.get("enabled"))
    if enabled is not None:
        users = [u for u in users if u.enabled == enabled]
    users.sort(key=lambda u: u.name)
    return web.json_response({"users": [_user(request, u) for u in users], "links": _links(request)})


async def create_user(request: web.Request) -> web.Response:
    authorize(request, "identity:create_user")
    body = await valid_body(request, schemas.USER_CREATE)
    check_types(body, USER_FIELDS)
    domain_id = _str_or_none(body.get("domain_id"), "domain_id") or DEFAULT_DOMAIN_ID
    user = await ctx_of(request).identity.create_user(
        body.get("name"), body.get("password"), enabled=body.get("enabled", True) is not False,
        default_project_id=body.get("default_project_id"), email=body.get("email"),
        description=body.get("description") or "", domain_id=domain_id)
    return web.json_response({"user": _user(request, user)}, status=201)


async def get_user(request: web.Request) -> web.Response:
    uid = request.match_info["user_id"]
    authorize(request, "identity:get_user", target_user_id=uid)
    return web.json_response({"user": _user(request, ctx_of(request).identity.users.require(uid))})


async def update_user(request: web.Request) -> web.Response:
    uid = request.match_info["user_id"]
    authorize(request, "identity:update_user")
    body = await valid_body(request, schemas.USER_UPDATE)
    user = await ctx_of(request).identity.update_user(uid, **body)
    return web.json_response({"user": _user(request, user)})


async def delete_user(request: web.Request) -> web.Response:
    authorize(request, "identity:delete_user")
    await ctx_of(request).identity.delete_user(request.match_info["user_id"])
    return web.Response(status=204)


async def user_projects(request: web.Request) -> web.Response:
    uid = request.match_info["user_id"]
    authorize(request, "identity:list_user_projects", target_user_id=uid)
    projects = ctx_of(request).identity.projects_of(uid)
    return web.json_response({"projects": [_project(request, p) for p in projects],
                              "links": _links(request)})


# -- projects -----------------------------------------------------------------------------------

async def list_projects(request: web.Request) -> web.Response:
    auth = auth_of(request)
    ident = ctx_of(request).identity
    name, dom = request.query.get("name"), request.query.get("domain_id")
    if auth.is_admin:
        projects = ident.projects.list()
    else:  # a non-admin sees the projects it belongs to, as `openstack project list` expects
        projects = ident.projects_of(auth.user_id)
    projects = [p for p in projects if (name is None or p.name == name)
                and (dom is None or p.domain_id == dom)]
    projects.sort(key=lambda p: p.name)
    return web.json_response({"projects": [_project(request, p) for p in projects],
                              "links": _links(request)})


async def create_project(request: web.Request) -> web.Response:
    authorize(request, "identity:create_project")
    body = await valid_body(request, schemas.PROJECT_CREATE)
    check_types(body, PROJECT_FIELDS)
    dom = _str_or_none(body.get("domain_id"), "domain_id") or DEFAULT_DOMAIN_ID
    if body.get("is_domain"):
        raise BadRequest("Projects acting as domains are not supported: create a domain.")
    project = await ctx_of(request).identity.create_project(
        body.get("name"), description=body.get("description") or "",
        enabled=body.get("enabled", True) is not False, domain_id=dom)
    return web.json_response({"project": _project(request, project)}, status=201)


async def get_project(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    auth = auth_of(request)
    ident = ctx_of(request).identity
    if not owns(auth, pid):
        raise Forbidden("You are not authorized to perform the requested action: identity:get_project.")
    return web.json_response({"project": _project(request, ident.projects.require(pid))})


async def update_project(request: web.Request) -> web.Response:
    authorize(request, "identity:update_project")
    body = await valid_body(request, schemas.PROJECT_UPDATE)
    project = await ctx_of(request).identity.update_project(request.match_info["project_id"], **body)
    return web.json_response({"project": _project(request, project)})


async def delete_project(request: web.Request) -> web.Response:
    authorize(request, "identity:delete_project")
    await ctx_of(request).identity.delete_project(request.match_info["project_id"])
    return web.Response(status=204)


# -- roles and assignments ----------------------------------------------------------------------

async def list_roles(request: web.Request) -> web.Response:
    authorize(request, "identity:list_roles")
    name = request.query.get("name")
    roles = ctx_of(request).identity.roles.list(lambda r: name is None or r.name == name)
    roles.sort(key=lambda r: r.name)
    return web.json_response({"roles": [_role(request, r) for r in roles], "links": _links(request)})


async def get_role(request: web.Request) -> web.Response:
    authorize(request, "identity:list_roles")
    role = ctx_of(request).identity.roles.require(request.match_info["role_id"])
    return web.json_response({"role": _role(request, role)})


async def create_role(request: web.Request) -> web.Response:
    authorize(request, "identity:create_role")
    body = await valid_body(request, schemas.ROLE_CREATE)
    role = await ctx_of(request).identity.create_role(body.get("name"))
    return web.json_response({"role": _role(request, role)}, status=201)


async def delete_role(request: web.Request) -> web.Response:
    authorize(request, "identity:delete_role")
    await ctx_of(request).identity.delete_role(request.match_info["role_id"])
    return web.Response(status=204)


def _target(request: web.Request) -> str:
    """The project of /projects/{p}/users/{u}/roles…, or the system for /system/users/{u}/roles…
    (a system assignment is one whose target is SYSTEM_SCOPE: the same handlers serve both)."""
    return request.match_info.get("project_id", SYSTEM_SCOPE)


def _assignment_ids(request: web.Request) -> tuple[str, str, str]:
    m = request.match_info
    return m["user_id"], _target(request), m["role_id"]


async def grant_role(request: web.Request) -> web.Response:
    authorize(request, "identity:assign_role")
    await ctx_of(request).identity.assign(*_assignment_ids(request))
    return web.Response(status=204)


async def check_role(request: web.Request) -> web.Response:
    authorize(request, "identity:list_role_assignments")
    from appliance.identity.records import Assignment
    ctx_of(request).identity.assignments.require(Assignment.make_id(*_assignment_ids(request)))
    return web.Response(status=204)


async def revoke_role(request: web.Request) -> web.Response:
    authorize(request, "identity:assign_role")
    await ctx_of(request).identity.unassign(*_assignment_ids(request))
    return web.Response(status=204)


async def list_user_project_roles(request: web.Request) -> web.Response:
    authorize(request, "identity:list_role_assignments")
    ident = ctx_of(request).identity
    roles = ident.roles_of(request.match_info["user_id"], _target(request))
    return web.json_response({"roles": [_role(request, r) for r in roles], "links": _links(request)})


async def role_assignments(request: web.Request) -> web.Response:
    auth = auth_of(request)
    q = request.query
    uid, pid, rid = q.get("user.id"), q.get("scope.project.id"), q.get("role.id")
    if q.get("scope.system") is not None:
        if q["scope.system"] != "all":
            raise BadRequest("scope.system must be 'all'.")
        if pid is not None:
            raise BadRequest("Specify one of scope.project.id and scope.system.")
        pid = SYSTEM_SCOPE
    if not auth.is_admin and uid != auth.user_id:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "identity:list_role_assignments.")
    ident = ctx_of(request).identity
    items = ident.assignments.list(lambda a: (uid is None or a.user_id == uid)
                                   and (pid is None or a.project_id == pid)
                                   and (rid is None or a.role_id == rid))
    names = query_bool(q.get("include_names")) or False
    out = []
    for a in items:
        system = a.project_id == SYSTEM_SCOPE
        scope: dict = {"system": {"all": True}} if system else {"project": {"id": a.project_id}}
        entry = {"user": {"id": a.user_id}, "scope": scope,
                 "role": {"id": a.role_id}, "links": {"assignment": ""}}
        if names:
            u, p, r = ident.users.get(a.user_id), ident.projects.get(a.project_id), ident.roles.get(a.role_id)
            entry["user"].update(name=u.name if u else None,
                                 domain=_domain_ref(request, u.domain_id if u else ""))
            if not system:
                entry["scope"]["project"].update(
                    name=p.name if p else None,
                    domain=_domain_ref(request, p.domain_id if p else ""))
            entry["role"]["name"] = r.name if r else None
        out.append(entry)
    return web.json_response({"role_assignments": out, "links": _links(request)})


def _domain(request: web.Request, d: Domain) -> dict:
    return {"id": d.id, "name": d.name, "enabled": d.enabled, "description": d.description,
            "tags": [], "options": {},
            "links": {"self": f"{_base(request)}/identity/v3/domains/{d.id}"}}


async def list_domains(request: web.Request) -> web.Response:
    """Every authenticated user may look domains up by name (clients resolve
    OS_USER_DOMAIN_NAME this way), as the default domain always could be."""
    name = request.query.get("name")
    enabled = query_bool(request.query.get("enabled"))
    doms = [d for d in ctx_of(request).identity.domains.all()
            if (name is None or d.name == name) and (enabled is None or d.enabled == enabled)]
    return web.json_response({"domains": [_domain(request, d) for d in doms],
                              "links": _links(request)})


async def get_domain(request: web.Request) -> web.Response:
    ident = ctx_of(request).identity
    domain = ident.domains.get(request.match_info["domain_id"])
    if domain is None:
        domain = ident.domains.by_name(request.match_info["domain_id"])
    if domain is None:
        raise NotFound(f"Could not find domain: {request.match_info['domain_id']}.")
    return web.json_response({"domain": _domain(request, domain)})


async def create_domain(request: web.Request) -> web.Response:
    authorize(request, "identity:create_domain")
    body = await valid_body(request, schemas.DOMAIN_CREATE)
    check_types(body, DOMAIN_FIELDS)
    if body.get("explicit_domain_id") or body.get("id"):
        raise BadRequest("Domain ids are generated; leave id out.")
    domain = await ctx_of(request).identity.create_domain(
        body.get("name"), description=body.get("description") or "",
        enabled=body.get("enabled", True) is not False)
    return web.json_response({"domain": _domain(request, domain)}, status=201)


async def update_domain(request: web.Request) -> web.Response:
    authorize(request, "identity:update_domain")
    body = await valid_body(request, schemas.DOMAIN_UPDATE)
    body = {k: v for k, v in body.items() if k in DOMAIN_FIELDS}
    domain = await ctx_of(request).identity.update_domain(request.match_info["domain_id"],
                                                          **body)
    return web.json_response({"domain": _domain(request, domain)})


async def delete_domain(request: web.Request) -> web.Response:
    authorize(request, "identity:delete_domain")
    await ctx_of(request).identity.delete_domain(request.match_info["domain_id"])
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    out: list[web.RouteDef] = [
        web.get("/identity", versions), web.get("/identity/", versions),
    ]
    for prefix in ("/identity/v3", "/v3"):
        out += [
            web.get(prefix, version_v3), web.get(prefix + "/", version_v3, name=None),
            web.post(prefix + "/auth/tokens", issue_token),
            web.get(prefix + "/auth/tokens", validate_token, allow_head=False),
            web.head(prefix + "/auth/tokens", check_token),
            web.delete(prefix + "/auth/tokens", revoke_token),
            web.get(prefix + "/auth/projects", auth_projects),
            web.get(prefix + "/auth/catalog", auth_catalog),
            web.get(prefix + "/users", list_users), web.post(prefix + "/users", create_user),
            web.get(prefix + "/users/{user_id}", get_user),
            web.patch(prefix + "/users/{user_id}", update_user),
            web.delete(prefix + "/users/{user_id}", delete_user),
            web.get(prefix + "/users/{user_id}/projects", user_projects),
            web.get(prefix + "/projects", list_projects), web.post(prefix + "/projects", create_project),
            web.get(prefix + "/projects/{project_id}", get_project),
            web.patch(prefix + "/projects/{project_id}", update_project),
            web.delete(prefix + "/projects/{project_id}", delete_project),
            web.get(prefix + "/roles", list_roles), web.post(prefix + "/roles", create_role),
            web.get(prefix + "/roles/{role_id}", get_role),
            web.delete(prefix + "/roles/{role_id}", delete_role),
            web.get(prefix + "/projects/{project_id}/users/{user_id}/roles", list_user_project_roles),
            web.put(prefix + "/projects/{project_id}/users/{user_id}/roles/{role_id}", grant_role),
            web.head(prefix + "/projects/{project_id}/users/{user_id}/roles/{role_id}", check_role),
            web.get(prefix + "/projects/{project_id}/users/{user_id}/roles/{role_id}", check_role,
                    allow_head=False),
            web.delete(prefix + "/projects/{project_id}/users/{user_id}/roles/{role_id}", revoke_role),
            web.get(prefix + "/role_assignments", role_assignments),
            web.get(prefix + "/system/users/{user_id}/roles", list_user_project_roles),
            web.put(prefix + "/system/users/{user_id}/roles/{role_id}", grant_role),
            web.head(prefix + "/system/users/{user_id}/roles/{role_id}", check_role),
            web.get(prefix + "/system/users/{user_id}/roles/{role_id}", check_role,
                    allow_head=False),
            web.delete(prefix + "/system/users/{user_id}/roles/{role_id}", revoke_role),
            web.get(prefix + "/domains", list_domains),
            web.get(prefix + "/domains/{domain_id}", get_domain),
            web.post(prefix + "/domains", create_domain),
            web.patch(prefix + "/domains/{domain_id}", update_domain),
            web.delete(prefix + "/domains/{domain_id}", delete_domain),
            *identity_catalog.routes(prefix),
            *identity_appcreds.routes(prefix),
        ]
    return out
