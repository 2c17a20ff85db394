"""/flavors (+ extra specs, access) and /os-keypairs."""
from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from aiohttp import web

from appliance.api.compute.common import component
from appliance.api.compute.views import flavor_view, keypair_view
from appliance.api.schemas import compute as schemas
from appliance.api.schemas.types import MAX_LIMIT, as_int, nova_bool
from appliance.api.util import auth_of, authorize, query_bool
from appliance.api.validation import valid_body, valid_query
from appliance.compute.records import Flavor, KeyPair
from appliance.errors import BadRequest, Conflict, Forbidden, NotFound


def _may_use(request: web.Request, f: Flavor) -> bool:
    auth = auth_of(request)
    return f.is_public or auth.is_admin or (auth.project_id in f.projects)


def find_flavor(request: web.Request, flavor_id: str) -> Flavor:
    f = component(request).flavors.get(flavor_id)
    if f is None or not _may_use(request, f):
        raise BadRequest(f"Flavor {flavor_id} could not be found.") \
            if request.path.endswith(("/servers", "/action")) \
            else NotFound(f"Flavor {flavor_id} could not be found.")
    return f


def _listed(request: web.Request) -> list[Flavor]:
    valid_query(request, schemas.FLAVORS_QUERY)
    q = request.query
    auth = auth_of(request)
    flavors = component(request).flavors.list()
    is_public = query_bool(q.get("is_public")) if "is_public" in q else True
    if auth.is_admin:
        if is_public is not None:
            flavors = [f for f in flavors if f.is_public == is_public]
    else:
        flavors = [f for f in flavors if _may_use(request, f)]
    if "minRam" in q:
        flavors = [f for f in flavors if f.ram >= int(q["minRam"])]
    if "minDisk" in q:
        flavors = [f for f in flavors if f.disk >= int(q["minDisk"])]
    key = q.get("sort_key", "flavorid")
    attr = {"flavorid": "id", "memory_mb": "ram", "root_gb": "disk"}.get(key, key)
    if attr not in ("id", "name", "ram", "vcpus", "disk", "swap"):
        attr = "id"
    flavors.sort(key=lambda f: (getattr(f, attr), f.id), reverse=q.get("sort_dir") == "desc")
    marker = q.get("marker")
    if marker:
        ids = [f.id for f in flavors]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        flavors = flavors[ids.index(marker) + 1:]
    if "limit" in q:
        flavors = flavors[:min(int(q["limit"]), MAX_LIMIT)]
    return flavors


async def list_flavors(request: web.Request) -> web.Response:
    authorize(request, "compute:list_flavors")
    return web.json_response({"flavors": [flavor_view(request, f, detail=False)
                                          for f in _listed(request)]})


async def list_flavors_detail(request: web.Request) -> web.Response:
    authorize(request, "compute:list_flavors")
    return web.json_response({"flavors": [flavor_view(request, f) for f in _listed(request)]})


async def show_flavor(request: web.Request) -> web.Response:
    authorize(request, "compute:get_flavor")
    f = component(request).flavors.get(request.match_info["id"])
    if f is None or not _may_use(request, f):
        raise NotFound(f"Flavor {request.match_info['id']} could not be found.")
    return web.json_response({"flavor": flavor_view(request, f)})


def _int(body: dict, key: str, default: int = 0) -> int:
    """A size the schema bounded (an integer or a string of digits; "" is the default)."""
    value = body.get(key)
    return default if value in (None, "") else as_int(value)


async def create_flavor(request: web.Request) -> web.Response:
    authorize(request, "compute:create_flavor")
    body = await valid_body(request, schemas.FLAVOR_CREATE)
    comp = component(request)
    name = body["name"].strip()
    fid = body.get("id")
    if fid in (None, "", "auto"):
        fid = str(uuid.uuid4())
    fid = str(fid)
    if comp.flavors.get(fid) is not None:
        raise Conflict(f"Flavor with ID {fid} already exists.")
    if comp.flavors.list(lambda f: f.name == name):
        raise Conflict(f"Flavor with name {name} already exists.")
    is_public = body.get("os-flavor-access:is_public", True)
    flavor = Flavor(
        id=fid, name=name, vcpus=_int(body, "vcpus"), ram=_int(body, "ram"),
        disk=_int(body, "disk"), ephemeral=_int(body, "OS-FLV-EXT-DATA:ephemeral"),
        swap=_int(body, "swap"), is_public=is_public is None or nova_bool(is_public),
        description=body.get("description"),
        rxtx_factor=float(body.get("rxtx_factor", 1.0) or 1.0))
    await comp.flavors.save(flavor)
    return web.json_response({"flavor": flavor_view(request, flavor)})


async def update_flavor(request: web.Request) -> web.Response:
    authorize(request, "compute:update_flavor")
    comp = component(request)
    f = comp.flavors.require(request.match_info["id"])
    body = await valid_body(request, schemas.FLAVOR_UPDATE)
    if "description" in body:
        f.description = body["description"]
    await comp.flavors.save(f)
    return web.json_response({"flavor": flavor_view(request, f)})


async def delete_flavor(request: web.Request) -> web.Response:
    authorize(request, "compute:delete_flavor")
    comp = component(request)
    comp.flavors.require(request.match_info["id"])
    await comp.flavors.delete(request.match_info["id"])
    return web.Response(status=202)


async def get_extra_specs(request: web.Request) -> web.Response:
    authorize(request, "compute:get_flavor")
    f = component(request).flavors.get(request.match_info["id"])
    if f is None or not _may_use(request, f):  # a private flavor is invisible, specs too
        raise NotFound(f"Flavor {request.match_info['id']} could not be found.")
    key = request.match_info.get("key")
    if key is not None:
        if key not in f.extra_specs:
            raise NotFound(f"Flavor {f.id} has no extra specs with key {key}.")
        return web.json_response({key: f.extra_specs[key]})
    return web.json_response({"extra_specs": dict(f.extra_specs)})


async def set_extra_specs(request: web.Request) -> web.Response:
    authorize(request, "compute:update_flavor")
    comp = component(request)
    f = comp.flavors.require(request.match_info["id"])
    key = request.match_info.get("key")
    body = await valid_body(request, schemas.EXTRA_SPECS if key is None
                            else schemas.EXTRA_SPEC_ONE)
    specs = body["extra_specs"] if key is None else body
    if key is not None and set(specs) != {key}:
        raise BadRequest("Request body and URI mismatch")
    new = {**f.extra_specs, **{k: _spec_text(v) for k, v in specs.items()}}
    if len(new) > MAX_EXTRA_SPECS:
        raise BadRequest(f"Invalid input for field/attribute extra_specs. A flavor holds at "
                         f"most {MAX_EXTRA_SPECS} extra specs.")
    f.extra_specs = new
    await comp.flavors.save(f)
    return web.json_response(specs if key is not None else {"extra_specs": dict(f.extra_specs)})


#: Nova has no bound; a flavor record with thousands of specs is copied into every server.
MAX_EXTRA_SPECS = 128


def _spec_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def delete_extra_spec(request: web.Request) -> web.Response:
    authorize(request, "compute:update_flavor")
    comp = component(request)
    f = comp.flavors.require(request.match_info["id"])
    key = request.match_info["key"]
    if key not in f.extra_specs:
        raise NotFound(f"Flavor {f.id} has no extra specs with key {key}.")
    del f.extra_specs[key]
    await comp.flavors.save(f)
    return web.Response(status=200)


async def flavor_access(request: web.Request) -> web.Response:
    authorize(request, "compute:get_flavor_access")
    f = component(request).flavors.require(request.match_info["id"])
    if f.is_public:
        raise NotFound("Access list not available for public flavors.")
    return web.json_response({"flavor_access": [{"flavor_id": f.id, "tenant_id": p}
                                                for p in f.projects]})


async def flavor_action(request: web.Request) -> web.Response:
    authorize(request, "compute:update_flavor_access")
    comp = component(request)
    f = comp.flavors.require(request.match_info["id"])
    body = await valid_body(request, schemas.FLAVOR_ACTION)
    (action, args), = body.items()
    p = args["tenant"]
    if action == "addTenantAccess":
        if p in f.projects:
            raise Conflict(f"Flavor access already exists for flavor {f.id} and project {p}")
        f.projects.append(p)
    else:
        if p not in f.projects:
            raise NotFound(f"Flavor access not found for {f.id} / {p}")
        f.projects.remove(p)
    await comp.flavors.save(f)
    return web.json_response({"flavor_access": [{"flavor_id": f.id, "tenant_id": p}
                                                for p in f.projects]})


# -- key pairs ----------------------------------------------------------------------------------

def fingerprint(public_key: str) -> str:
    """Nova's: MD5 of the key blob, colon-separated hex."""
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise BadRequest("Keypair data is invalid: not an OpenSSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise BadRequest("Keypair data is invalid: bad base64") from exc
    if not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise BadRequest(f"Keypair data is invalid: unknown key type {parts[0]}")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def generate_keypair() -> tuple[str, str]:
    """(public OpenSSH line, private key PEM): ed25519, made with `cryptography`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return public, private


def _owner(request: web.Request) -> str:
    auth = auth_of(request)
    wanted = request.query.get("user_id")
    if wanted and wanted != auth.user_id:
        if not auth.is_admin:
            raise Forbidden("Only an admin may manage another user's key pairs.")
        return wanted
    return auth.user_id


async def list_keypairs(request: web.Request) -> web.Response:
    authorize(request, "compute:list_keypairs")
    user = _owner(request)
    kps = sorted(component(request).keypairs.list(lambda k: k.user_id == user),
                 key=lambda k: k.name)
    return web.json_response({"keypairs": [{"keypair": keypair_view(request, k)} for k in kps]})


async def show_keypair(request: web.Request) -> web.Response:
    authorize(request, "compute:get_keypair")
    user = _owner(request)
    k = component(request).keypairs.get(f"{user}/{request.match_info['name']}")
    if k is None:
        raise NotFound(f"Keypair {request.match_info['name']} not found for user {user}")
    return web.json_response({"keypair": keypair_view(request, k, full=True)})


async def create_keypair(request: web.Request) -> web.Response:
    authorize(request, "compute:create_keypair")
    auth = auth_of(request)
    body = await valid_body(request, schemas.KEYPAIR_CREATE)
    comp = component(request)
    name = body["name"]
    if not name.strip():
        raise BadRequest(f"Invalid input for field/attribute name. Value: {name!r}. A key "
                         "pair name is not only blanks.")
    user = body.get("user_id") or auth.user_id
    if user != auth.user_id and not auth.is_admin:
        raise Forbidden("Only an admin may create key pairs for other users.")
    if comp.keypairs.get(f"{user}/{name}") is not None:
        raise Conflict(f"Key pair '{name}' already exists.")
    limit = comp.manager.quota_limits(auth.project_id or "")["key_pairs"]
    if limit >= 0 and len(comp.keypairs.list(lambda k: k.user_id == user)) >= limit:
        raise Forbidden("Quota exceeded, too many key pairs.")
    private = None
    public = body.get("public_key")
    if public:
        public = public.strip()
    else:
        public, private = generate_keypair()
    kp = KeyPair(id=f"{user}/{name}", name=name, user_id=user, public_key=public,
                 fingerprint=fingerprint(public), type=body.get("type", "ssh"))
    await comp.keypairs.save(kp)
    view = keypair_view(request, kp)
    view["user_id"] = user
    if private is not None:
        view["private_key"] = private
    from appliance.api.compute.common import at_least
    return web.json_response({"keypair": view}, status=201 if at_least(request, 2) else 200)


async def delete_keypair(request: web.Request) -> web.Response:
    authorize(request, "compute:delete_keypair")
    user = _owner(request)
    comp = component(request)
    kid = f"{user}/{request.match_info['name']}"
    if comp.keypairs.get(kid) is None:
        raise NotFound(f"Keypair {request.match_info['name']} not found for user {user}")
    await comp.keypairs.delete(kid)
    from appliance.api.compute.common import at_least
    return web.Response(status=204 if at_least(request, 2) else 202)


def flavor_from_ref(request: web.Request, ref: Any) -> Flavor:
    return find_flavor(request, str(ref).rstrip("/").rsplit("/", 1)[-1])
