"""Keystone's catalog resources, read-only: services, endpoints and regions.

The appliance's catalog is its own components at the configured URLs (appliance/api/catalog.py),
so these list what every token's catalog holds; creating, changing or deleting them is a 403
that says why. `openstack catalog list`, `endpoint list`, `service list` and `region list` and
upstream test setups read them.
"""
from __future__ import annotations

from aiohttp import web

from appliance.api.catalog import INTERFACES, REGION, Service, services
from appliance.api.util import authorize, ctx_of
from appliance.errors import Forbidden, NotFound

REGION_ID = REGION


def _base(request: web.Request) -> str:
    return ctx_of(request).config.api.base_url + "/identity/v3"


def _links(request: web.Request) -> dict:
    return {"self": str(request.url), "previous": None, "next": None}


def _service(request: web.Request, s: Service) -> dict:
    return {"id": s.id, "type": s.type, "name": s.name, "enabled": True,
            "description": f"monostack {s.name}",
            "links": {"self": f"{_base(request)}/services/{s.id}"}}


def _endpoints(request: web.Request) -> list[dict]:
    out = []
    for s in services(ctx_of(request)):
        url = s.template.replace("{project_id}", "$(project_id)s")
        for iface in INTERFACES:
            eid = s.endpoint_id(iface)
            out.append({"id": eid, "interface": iface, "region": REGION, "region_id": REGION,
                        "service_id": s.id, "url": url, "enabled": True,
                        "links": {"self": f"{_base(request)}/endpoints/{eid}"}})
    return out


def _region(request: web.Request) -> dict:
    return {"id": REGION_ID, "description": "the appliance", "parent_region_id": None,
            "links": {"self": f"{_base(request)}/regions/{REGION_ID}"}}


async def list_services(request: web.Request) -> web.Response:
    authorize(request, "identity:list_services")
    q = request.query
    items = [_service(request, s) for s in services(ctx_of(request))
             if ("type" not in q or s.type == q["type"]) and ("name" not in q or s.name == q["name"])]
    return web.json_response({"services": items, "links": _links(request)})


async def get_service(request: web.Request) -> web.Response:
    authorize(request, "identity:list_services")
    sid = request.match_info["service_id"]
    for s in services(ctx_of(request)):
        if s.id == sid:
            return web.json_response({"service": _service(request, s)})
    raise NotFound(f"Could not find service: {sid}.")


async def list_endpoints(request: web.Request) -> web.Response:
    authorize(request, "identity:list_endpoints")
    q = request.query
    items = [e for e in _endpoints(request)
             if all(k not in q or e[k] == q[k] for k in ("interface", "service_id", "region_id"))]
    return web.json_response({"endpoints": items, "links": _links(request)})


async def get_endpoint(request: web.Request) -> web.Response:
    authorize(request, "identity:list_endpoints")
    eid = request.match_info["endpoint_id"]
    for e in _endpoints(request):
        if e["id"] == eid:
            return web.json_response({"endpoint": e})
    raise NotFound(f"Could not find endpoint: {eid}.")


async def list_regions(request: web.Request) -> web.Response:
    return web.json_response({"regions": [_region(request)], "links": _links(request)})


async def get_region(request: web.Request) -> web.Response:
    if request.match_info["region_id"] != REGION_ID:
        raise NotFound(f"Could not find region: {request.match_info['region_id']}.")
    return web.json_response({"region": _region(request)})


async def read_only(request: web.Request) -> web.Response:
    authorize(request, "identity:update_catalog")
    raise Forbidden("The service catalog is the appliance's own: its services and endpoints "
                    "follow the configuration ([api] listen, public_url), not the API.")


def routes(prefix: str) -> list[web.RouteDef]:
    out = [web.get(prefix + "/services", list_services),
           web.get(prefix + "/services/{service_id}", get_service),
           web.get(prefix + "/endpoints", list_endpoints),
           web.get(prefix + "/endpoints/{endpoint_id}", get_endpoint),
           web.get(prefix + "/regions", list_regions),
           web.get(prefix + "/regions/{region_id}", get_region)]
    for collection in ("services", "endpoints", "regions"):
        out += [web.post(f"{prefix}/{collection}", read_only),
                web.patch(f"{prefix}/{collection}/{{id}}", read_only),
                web.delete(f"{prefix}/{collection}/{{id}}", read_only)]
    return out
