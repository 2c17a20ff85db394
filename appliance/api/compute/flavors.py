"""/flavors (+ extra specs, access) and /os-keypairs."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from appliance.api.compute.common import component
from appliance.api.compute.views import flavor_view, keypair_view
from appliance.api.schemas import compute as schemas
from appliance.api.schemas.types import MAX_LIMIT, as_int, nova_bool
from appliance.api.util import auth_of, authorize, query_bool
from appliance.api.validation import valid_body, valid_query
from appliance.compute.records import Flavor
from appliance.compute.service import ComputeService, FlavorSpec
from appliance.errors import BadRequest, NotFound


def _may_use(request: web.Request, f: Flavor) -> bool:
    return ComputeService.may_use_flavor(auth_of(request), f)


def find_flavor(request: web.Request, flavor_id: str) -> Flavor:
    return component(request).service.find_flavor(
        auth_of(request), flavor_id,
        for_request=request.path.endswith(("/servers", "/action")))


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
    is_public = body.get("os-flavor-access:is_public", True)
    spec = FlavorSpec(
        id=body.get("id"), name=body["name"].strip(), vcpus=_int(body, "vcpus"),
        ram=_int(body, "ram"), disk=_int(body, "disk"),
        ephemeral=_int(body, "OS-FLV-EXT-DATA:ephemeral"), swap=_int(body, "swap"),
        is_public=is_public is None or nova_bool(is_public),
        description=body.get("description"),
        rxtx_factor=float(body.get("rxtx_factor", 1.0) or 1.0))
    flavor = await component(request).service.create_flavor(spec)
    return web.json_response({"flavor": flavor_view(request, flavor)})


async def update_flavor(request: web.Request) -> web.Response:
    authorize(request, "compute:update_flavor")
    service = component(request).service
    f = service.flavors.require(request.match_info["id"])
    body = await valid_body(request, schemas.FLAVOR_UPDATE)
    if "description" in body:
        f = await service.set_flavor_description(f.id, body["description"])
    return web.json_response({"flavor": flavor_view(request, f)})


async def delete_flavor(request: web.Request) -> web.Response:
    authorize(request, "compute:delete_flavor")
    await component(request).service.delete_flavor(request.match_info["id"])
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
    service = component(request).service
    service.flavors.require(request.match_info["id"])
    key = request.match_info.get("key")
    body = await valid_body(request, schemas.EXTRA_SPECS if key is None
                            else schemas.EXTRA_SPEC_ONE)
    specs = body["extra_specs"] if key is None else body
    if key is not None and set(specs) != {key}:
        raise BadRequest("Request body and URI mismatch")
    f = await service.set_extra_specs(request.match_info["id"],
                                      {k: _spec_text(v) for k, v in specs.items()})
    return web.json_response(specs if key is not None else {"extra_specs": dict(f.extra_specs)})


def _spec_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def delete_extra_spec(request: web.Request) -> web.Response:
    authorize(request, "compute:update_flavor")
    await component(request).service.delete_extra_spec(request.match_info["id"],
                                                       request.match_info["key"])
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
    service = component(request).service
    service.flavors.require(request.match_info["id"])
    body = await valid_body(request, schemas.FLAVOR_ACTION)
    (action, args), = body.items()
    p = args["tenant"]
    if action == "addTenantAccess":
        f = await service.add_flavor_access(request.match_info["id"], p)
    else:
        f = await service.remove_flavor_access(request.match_info["id"], p)
    return web.json_response({"flavor_access": [{"flavor_id": f.id, "tenant_id": p}
                                                for p in f.projects]})


# -- key pairs ----------------------------------------------------------------------------------

def _owner(request: web.Request) -> str:
    return component(request).service.keypair_owner(auth_of(request),
                                                    request.query.get("user_id"))


async def list_keypairs(request: web.Request) -> web.Response:
    authorize(request, "compute:list_keypairs")
    user = _owner(request)
    kps = sorted(component(request).keypairs.list(lambda k: k.user_id == user),
                 key=lambda k: k.name)
    return web.json_response({"keypairs": [{"keypair": keypair_view(request, k)} for k in kps]})


async def show_keypair(request: web.Request) -> web.Response:
    authorize(request, "compute:get_keypair")
    k = component(request).service.find_keypair(_owner(request), request.match_info["name"])
    return web.json_response({"keypair": keypair_view(request, k, full=True)})


async def create_keypair(request: web.Request) -> web.Response:
    authorize(request, "compute:create_keypair")
    auth = auth_of(request)
    body = await valid_body(request, schemas.KEYPAIR_CREATE)
    name = body["name"]
    if not name.strip():
        raise BadRequest(f"Invalid input for field/attribute name. Value: {name!r}. A key "
                         "pair name is not only blanks.")
    kp, private = await component(request).service.create_keypair(
        auth, name, body.get("user_id"), body.get("public_key"), body.get("type", "ssh"))
    view = keypair_view(request, kp)
    view["user_id"] = kp.user_id
    if private is not None:
        view["private_key"] = private
    from appliance.api.compute.common import at_least
    return web.json_response({"keypair": view}, status=201 if at_least(request, 2) else 200)


async def delete_keypair(request: web.Request) -> web.Response:
    authorize(request, "compute:delete_keypair")
    await component(request).service.delete_keypair(_owner(request), request.match_info["name"])
    from appliance.api.compute.common import at_least
    return web.Response(status=204 if at_least(request, 2) else 202)


def flavor_from_ref(request: web.Request, ref: Any) -> Flavor:
    return find_flavor(request, str(ref).rstrip("/").rsplit("/", 1)[-1])
