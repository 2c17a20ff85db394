"""Nova-shaped bodies of servers, flavors and key pairs, by microversion.

Nothing here is ever null where a client iterates (image is {"id"} or "", flavor a dict,
addresses a dict, security_groups a list — see OPENSTACK-CLIENTS.md gotcha 4).
"""
from __future__ import annotations

import hashlib
import zlib
from typing import Any

from aiohttp import web

from appliance.api.compute.common import at_least, ctx_of, links, mv
from appliance.api.util import auth_of
from appliance.compute.records import Flavor, Instance, KeyPair, iso


def host_id(inst: Instance) -> str:
    if not inst.host:
        return ""
    return hashlib.sha224((inst.project_id + inst.host).encode()).hexdigest()


def _floating(request: web.Request) -> dict[str, dict[str, list[str]]]:
    """Floating IPs by port, read once per request (a listing of many servers asks once)."""
    if "monostack.floating" not in request:
        net = ctx_of(request).components.network
        request["monostack.floating"] = net.floating_addresses() if net is not None else {}
    return request["monostack.floating"]


def addresses_view(request: web.Request, inst: Instance) -> dict[str, list[dict[str, Any]]]:
    """Fixed addresses, each followed by the floating ones NATed to it, as Nova shows them."""
    return _addresses(_floating(request), inst)


def _addresses(floating: dict[str, dict[str, list[str]]],
               inst: Instance) -> dict[str, list[dict[str, Any]]]:
    if not floating:
        return inst.addresses
    by_ip = {ip: p for p in inst.ports for ip in p.fixed_ips}
    out: dict[str, list[dict[str, Any]]] = {}
    for name, addrs in inst.addresses.items():
        listed = out.setdefault(name, [])
        for a in addrs:
            listed.append(a)
            port = by_ip.get(a["addr"])
            for f in floating.get(port.port_id, {}).get(a["addr"], []) if port else []:
                listed.append({"version": 4, "addr": f, "OS-EXT-IPS:type": "floating",
                               "OS-EXT-IPS-MAC:mac_addr": a.get("OS-EXT-IPS-MAC:mac_addr")})
    return out


def server_summary(request: web.Request, inst: Instance) -> dict[str, Any]:
    return {"id": inst.id, "name": inst.name, "links": links(request, "servers", inst.id)}


def server_detail(request: web.Request, inst: Instance) -> dict[str, Any]:
    return ServerViews(request).detail(inst)


class ServerViews:
    """What every server body of one request shares (microversion, caller, URLs, floating
    IPs), read from the request once: a listing of 1,000 servers built 1,000 bodies each
    asking the request for them again, most of its time."""

    def __init__(self, request: web.Request) -> None:
        root = ctx_of(request).config.api.base_url + "/compute"
        self.root = root
        self.base = root + "/v2.1"
        self.minor = mv(request)[1] if mv(request)[0] == 2 else 0
        self.is_admin = auth_of(request).is_admin
        self.floating = _floating(request)
        compute = ctx_of(request).components.compute
        self.progress = compute.manager.meter if compute is not None else None

    def links(self, id: str) -> list[dict[str, str]]:
        return [{"rel": "self", "href": f"{self.base}/servers/{id}"},
                {"rel": "bookmark", "href": f"{self.root}/servers/{id}"}]

    def summary(self, inst: Instance) -> dict[str, Any]:
        return {"id": inst.id, "name": inst.name, "links": self.links(inst.id)}

    def detail(self, inst: Instance) -> dict[str, Any]:
        minor, root = self.minor, self.root
        if inst.image_id:
            image: Any = {"id": inst.image_id,
                          "links": [{"rel": "bookmark", "href": f"{root}/images/{inst.image_id}"}]}
        else:
            image = ""
        if minor >= 47:
            f = inst.flavor
            flavor: dict[str, Any] = {"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk,
                                      "ephemeral": f.ephemeral, "swap": f.swap,
                                      "original_name": f.name,
                                      "extra_specs": dict(f.extra_specs or {})}
        else:
            fid = inst.flavor.id
            flavor = {"id": fid, "links": [{"rel": "bookmark", "href": f"{root}/flavors/{fid}"}]}
        status = inst.status
        body: dict[str, Any] = {
            "id": inst.id,
            "name": inst.name,
            "status": status,
            "tenant_id": inst.project_id,
            "user_id": inst.user_id,
            "metadata": dict(inst.metadata),
            "hostId": host_id(inst),
            "image": image,
            "flavor": flavor,
            "created": iso(inst.created_at),
            "updated": iso(inst.updated_at),
            "addresses": _addresses(self.floating, inst),
            "accessIPv4": inst.access_ipv4,
            "accessIPv6": inst.access_ipv6,
            "links": self.links(inst.id),
            "OS-DCF:diskConfig": "MANUAL",
            # how far the running action is, where the daemon knows (compute/progress_meter.py)
            "progress": (self.progress.of(inst) if self.progress is not None
                         else 100 if status == "ACTIVE" else 0),
            "OS-EXT-AZ:availability_zone": inst.availability_zone,
            "config_drive": "True" if inst.config_drive else "",
            "key_name": inst.key_name,
            "OS-SRV-USG:launched_at": iso(inst.launched_at),
            "OS-SRV-USG:terminated_at": iso(inst.terminated_at),
            "security_groups": [{"name": n} for n in inst.security_groups],
            "OS-EXT-STS:task_state": str(inst.task_state) if inst.task_state else None,
            "OS-EXT-STS:vm_state": str(inst.vm_state),
            "OS-EXT-STS:power_state": int(inst.power_state),
            "os-extended-volumes:volumes_attached": [
                {"id": a.volume_id, "delete_on_termination": bool(a.delete_on_termination)}
                for a in inst.volume_attachments],
        }
        if inst.fault and status in ("ERROR", "DELETED"):
            fault = inst.fault
            body["fault"] = {"code": fault.code, "message": fault.message,
                             "created": iso(fault.created),
                             **({"details": fault.details} if self.is_admin else {})}
        if minor >= 9:
            body["locked"] = inst.locked
        if minor >= 19:
            body["description"] = inst.description
        if minor >= 26:
            body["tags"] = list(inst.tags)
        if self.is_admin:
            body.update({
                "OS-EXT-SRV-ATTR:host": inst.host,
                "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.host,
                "OS-EXT-SRV-ATTR:instance_name": f"ms-{inst.id}",
            })
            if minor >= 3:
                body.update({
                    "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                    "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                    "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                    "OS-EXT-SRV-ATTR:kernel_id": "",
                    "OS-EXT-SRV-ATTR:ramdisk_id": "",
                    "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                    "OS-EXT-SRV-ATTR:user_data": inst.user_data,
                })
            if minor >= 16:
                body["host_status"] = "UP" if inst.host else ""
        return body


def flavor_view(request: web.Request, f: Flavor, detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f.id, "name": f.name, "links": links(request, "flavors", f.id)}
    if at_least(request, 55):
        body["description"] = f.description
    if not detail:
        return body
    body.update({
        "ram": f.ram, "vcpus": f.vcpus, "disk": f.disk, "swap": f.swap,
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral, "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": f.is_public, "rxtx_factor": f.rxtx_factor,
    })
    if at_least(request, 61):
        body["extra_specs"] = dict(f.extra_specs)
    return body


def keypair_view(request: web.Request, k: KeyPair, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"name": k.name, "public_key": k.public_key,
                            "fingerprint": k.fingerprint}
    if at_least(request, 2):
        body["type"] = k.type
    if full:
        body.update({"user_id": k.user_id, "id": zlib.crc32(k.id.encode()) & 0x7FFFFFFF,
                     "created_at": iso(k.created_at), "deleted": False, "deleted_at": None,
                     "updated_at": None})
    return body
