"""Version discovery, /limits, os-quota-sets, os-hypervisors, os-availability-zone,
os-server-groups.

Monostack extension (admin): GET /compute/v2.1/os-hypervisors/{id}/monostack-usage →
{"usage": {"cpu_percent": float|null, "memory_mb": int, "memory_used_mb": int|null}}, the live
host load (CPU busy since the previous call), which Nova's hypervisor views do not carry."""
from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from appliance.api.compute.common import MAX_VERSION, MIN_VERSION, component, fmt_version
from appliance.api.schemas import compute as schemas
from appliance.api.schemas.types import as_int
from appliance.api.util import auth_of, authorize, ctx_of, public
from appliance.api.validation import valid_body
from appliance.compute.records import DEFAULT_QUOTAS, ServerGroup
from appliance.errors import BadRequest, NotFound
from appliance.identity.policy import owns

#: quota keys shown at our max microversion (2.57 dropped injected_file*, 2.36 network ones)
SHOWN_QUOTAS = ("instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups",
                "server_group_members")


def _version_entry(request: web.Request) -> dict[str, Any]:
    base = ctx_of(request).config.api.base_url
    return {"id": "v2.1", "status": "CURRENT", "version": fmt_version(MAX_VERSION),
            "min_version": fmt_version(MIN_VERSION), "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


def _legacy_entry(request: web.Request) -> dict[str, Any]:
    """Nova still lists v2.0 (the same API without microversions), and so do we: clients and
    conformance tests expect both entries."""
    base = ctx_of(request).config.api.base_url
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/compute/v2/"}]}


@public
async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": [_legacy_entry(request), _version_entry(request)]})


@public
async def version_v20(request: web.Request) -> web.Response:
    return web.json_response({"version": _legacy_entry(request)})


@public
async def version_v21(request: web.Request) -> web.Response:
    return web.json_response({"version": _version_entry(request)})


# -- limits and quotas ----------------------------------------------------------------------

def _group_count(request: web.Request, project_id: str) -> int:
    return len(component(request).server_groups.list(lambda g: g.project_id == project_id))


async def limits(request: web.Request) -> web.Response:
    auth = authorize(request, "compute:get_limits")
    project = request.query.get("tenant_id") if auth.is_admin else None
    project = project or auth.project_id or ""
    manager = component(request).manager
    lim, used = manager.quota_limits(project), manager.quota_usage(project)
    absolute = {
        "maxTotalInstances": lim["instances"], "maxTotalCores": lim["cores"],
        "maxTotalRAMSize": lim["ram"], "maxServerMeta": lim["metadata_items"],
        "maxTotalKeypairs": lim["key_pairs"], "maxServerGroups": lim["server_groups"],
        "maxServerGroupMembers": lim["server_group_members"], "maxImageMeta": 128,
        "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"],
        "totalRAMUsed": used["ram"], "totalServerGroupsUsed": _group_count(request, project),
    }
    return web.json_response({"limits": {"rate": [], "absolute": absolute}})


def _quota_body(request: web.Request, project_id: str, detail: bool = False) -> dict[str, Any]:
    manager = component(request).manager
    lim, used = manager.quota_limits(project_id), manager.quota_usage(project_id)
    used = {**used, "server_groups": _group_count(request, project_id)}
    body: dict[str, Any] = {"id": project_id}
    for key in SHOWN_QUOTAS:
        if detail:
            body[key] = {"limit": lim[key], "in_use": used.get(key, 0),
                         "reserved": manager.ctx.quotas.reserved(project_id, key)}
        else:
            body[key] = lim[key]
    return body


async def show_quotas(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    authorize(request, "compute:show_quotas", target_project_id=pid)
    detail = request.path.endswith("/detail")
    return web.json_response({"quota_set": _quota_body(request, pid, detail)})


async def default_quotas(request: web.Request) -> web.Response:
    authorize(request, "compute:show_quotas")
    body = {"id": request.match_info["project_id"],
            **{k: DEFAULT_QUOTAS[k] for k in SHOWN_QUOTAS}}
    return web.json_response({"quota_set": body})


async def update_quotas(request: web.Request) -> web.Response:
    authorize(request, "compute:update_quotas")
    pid = request.match_info["project_id"]
    body = await valid_body(request, schemas.QUOTA_UPDATE)
    limits = {key: as_int(value)  # -1 … 2^31-1 (schema)
              for key, value in body.items()
              # Nova's network quotas (fixed_ips …) are accepted and not kept here
              if key != "force" and key in DEFAULT_QUOTAS}
    await component(request).service.set_quota_limits(pid, limits)
    body = _quota_body(request, pid)
    body.pop("id")
    return web.json_response({"quota_set": body})


async def delete_quotas(request: web.Request) -> web.Response:
    authorize(request, "compute:update_quotas")
    await component(request).service.reset_quota_limits(request.match_info["project_id"])
    return web.Response(status=202)


# -- hypervisors ----------------------------------------------------------------------------

def _hv_id(hostname: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "monostack-hypervisor." + hostname))


def _hv_type(manager: Any) -> str:
    return {"qemu": "QEMU", "kvm": "KVM", "test": "TEST"}.get(
        str(manager.host_info.hypervisor_type), str(manager.host_info.hypervisor_type).upper())


def _hv_version(text: str) -> int:
    try:
        major, minor, micro = (int(x) for x in (text.split(".") + ["0", "0"])[:3])
    except ValueError:
        return 0
    return major * 1_000_000 + minor * 1000 + micro


def _hypervisor(request: web.Request, detail: bool) -> dict[str, Any]:
    manager = component(request).manager
    manager.require_up()  # the host is known once libvirt answered
    hi = manager.host_info
    body: dict[str, Any] = {"id": _hv_id(hi.hostname), "hypervisor_hostname": hi.hostname,
                            "state": "up", "status": "enabled"}
    if not detail:
        return body
    u = manager.scheduler.usage()
    running = len(manager.instances.list(lambda i: i.claim is not None))
    body.update({
        "vcpus": u["vcpus"], "vcpus_used": u["vcpus_used"], "memory_mb": u["memory_mb"],
        "memory_mb_used": u["memory_mb_used"], "local_gb": u["local_gb"],
        "local_gb_used": u["local_gb_used"], "free_ram_mb": u["free_ram_mb"],
        "free_disk_gb": u["free_disk_gb"], "current_workload": len(manager._running),
        "running_vms": running, "disk_available_least": u["free_disk_gb"],
        "hypervisor_type": _hv_type(manager),
        "hypervisor_version": _hv_version(hi.hypervisor_version),
        "host_ip": "127.0.0.1",
        "service": {"host": hi.hostname, "id": _hv_id("service." + hi.hostname),
                    "disabled_reason": None},
        "cpu_info": {"arch": hi.arch, "model": hi.cpu_model, "vendor": "",
                     "topology": {"cells": len(hi.numa_cells), "cores": hi.cpus, "threads": 1,
                                  "sockets": 1},
                     "features": []},
    })
    return body


async def list_hypervisors(request: web.Request) -> web.Response:
    authorize(request, "compute:list_hypervisors")
    detail = request.path.rstrip("/").endswith("/detail")
    hv = _hypervisor(request, detail)
    q = request.query
    if "hypervisor_hostname_pattern" in q and q["hypervisor_hostname_pattern"] not in \
            hv["hypervisor_hostname"]:
        raise NotFound("No hypervisor matching that pattern")
    return web.json_response({"hypervisors": [hv]})


async def show_hypervisor(request: web.Request) -> web.Response:
    authorize(request, "compute:get_hypervisor")
    hv = _hypervisor(request, True)
    if request.match_info["id"] not in (hv["id"], hv["hypervisor_hostname"]):
        raise NotFound(f"Hypervisor {request.match_info['id']} could not be found.")
    return web.json_response({"hypervisor": hv})


async def hypervisor_usage(request: web.Request) -> web.Response:
    """Monostack extension: live host load (CPU busy %, memory in use) read from the driver,
    for the operator console's sparklines; os-hypervisors only reports allocations."""
    authorize(request, "compute:get_hypervisor_usage")
    hv = _hypervisor(request, False)
    if request.match_info["id"] not in (hv["id"], hv["hypervisor_hostname"]):
        raise NotFound(f"Hypervisor {request.match_info['id']} could not be found.")
    u = await component(request).manager.driver.host_usage()
    return web.json_response({"usage": {
        "cpu_percent": u.cpu_percent, "memory_mb": u.memory_total_kib // 1024,
        "memory_used_mb": None if u.memory_used_kib is None else u.memory_used_kib // 1024}})


async def hypervisor_statistics(request: web.Request) -> web.Response:
    authorize(request, "compute:get_hypervisor_statistics")
    hv = _hypervisor(request, True)
    keys = ("vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "local_gb", "local_gb_used",
            "free_ram_mb", "free_disk_gb", "current_workload", "running_vms",
            "disk_available_least")
    return web.json_response({"hypervisor_statistics": {"count": 1,
                                                        **{k: hv[k] for k in keys}}})


# -- availability zones -----------------------------------------------------------------------

async def availability_zones(request: web.Request) -> web.Response:
    authorize(request, "compute:list_availability_zones")
    zone: dict[str, Any] = {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}
    if request.path.rstrip("/").endswith("/detail") and auth_of(request).is_admin:
        manager = component(request).manager
        manager.require_up()
        host = manager.host_info.hostname
        zone["hosts"] = {host: {"nova-compute": {"available": True, "active": True,
                                                 "updated_at": None}}}
    return web.json_response({"availabilityZoneInfo": [zone]})


# -- server groups (recorded, not enforced: one host) -----------------------------------------

def _group_view(g: ServerGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "policies": [g.policy], "members": list(g.members),
            "metadata": {}, "project_id": g.project_id, "user_id": g.user_id}


async def list_server_groups(request: web.Request) -> web.Response:
    auth = authorize(request, "compute:list_server_groups")
    comp = component(request)
    all_projects = auth.is_admin and request.query.get("all_projects") not in (None, "0",
                                                                               "false")
    groups = comp.server_groups.list(lambda g: all_projects or g.project_id == auth.project_id)
    return web.json_response({"server_groups": [_group_view(g) for g in groups]})


async def create_server_group(request: web.Request) -> web.Response:
    auth = authorize(request, "compute:create_server_group")
    body = await valid_body(request, schemas.SERVER_GROUP_CREATE)
    name = body["name"]
    policies = body.get("policies") or ([body["policy"]] if body.get("policy") else [])
    if len(policies) != 1:
        raise BadRequest("server_group needs exactly one policy: affinity, anti-affinity, "
                         "soft-affinity or soft-anti-affinity")
    g = await component(request).service.create_server_group(auth, name, policies[0])
    return web.json_response({"server_group": _group_view(g)})


def _group(request: web.Request) -> ServerGroup:
    auth = auth_of(request)
    g = component(request).server_groups.get(request.match_info["id"])
    if g is None or not owns(auth, g.project_id):
        raise NotFound(f"Server group {request.match_info['id']} could not be found.")
    return g


async def show_server_group(request: web.Request) -> web.Response:
    authorize(request, "compute:get_server_group")
    g = _group(request)
    g.members = component(request).service.live_members(g)
    return web.json_response({"server_group": _group_view(g)})


async def delete_server_group(request: web.Request) -> web.Response:
    authorize(request, "compute:delete_server_group")
    g = _group(request)
    await component(request).service.delete_server_group(g.id)
    return web.Response(status=204)

