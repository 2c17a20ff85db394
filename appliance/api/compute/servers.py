"""/servers: create, list, show, update, delete, actions, attachments, interfaces, consoles."""
from __future__ import annotations

import re
import secrets
from operator import attrgetter
from typing import Any

from aiohttp import WSMsgType, web

from appliance.api.compute.common import (
    at_least,
    base_url,
    check_not_locked,
    component,
    require_instance,
    server_name,
)
from appliance.api.compute.flavors import find_flavor
from appliance.api.compute.listing import server_bodies
from appliance.api.compute.views import (
    ServerViews,
    addresses_view,
    server_detail,
    server_summary,
)
from appliance.api.schemas import compute as schemas
from appliance.api.schemas.types import MAX_LIMIT, as_int, nova_bool
from appliance.api.util import (
    auth_of,
    authorize,
    ctx_of,
    json_answer,
    json_bytes,
    public,
    query_bool,
)
from appliance.api.validation import valid_body, valid_query, validate
from appliance.compute.records import Instance, PowerState, TaskState, VmState, VolumeAttachment
from appliance.compute.service import NewRootVolume, RootVolume, ServerCreate
from appliance.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from appliance.seams import PortBinding

_STATUS_FILTER = {"BUILD", "ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE", "ERROR",
                  "VERIFY_RESIZE", "REVERT_RESIZE", "RESIZE", "REBOOT", "HARD_REBOOT",
                  "REBUILD", "DELETED", "SOFT_DELETED", "SHELVED", "SHELVED_OFFLOADED",
                  "MIGRATING", "PASSWORD", "UNKNOWN"}


# -- create ---------------------------------------------------------------------------------

async def create_server(request: web.Request) -> web.Response:
    """Reads the body (shapes checked by its schema) into a ServerCreate; compute's service
    judges and records it."""
    auth = authorize(request, "compute:create_server")
    if not auth.project_id:
        raise Forbidden("A project-scoped token is needed to create servers.")
    body = await valid_body(request, schemas.SERVER_CREATE, unwrap=False)
    srv = body["server"]
    req = _server_create(body, srv)
    instances, reservation = await component(request).service.create_servers(auth, req)
    first = instances[0]
    if nova_bool(srv.get("return_reservation_id")) and req.max_count > 1:
        return web.json_response({"reservation_id": reservation}, status=202)
    answer = {"id": first.id, "links": server_summary(request, first)["links"],
              "OS-DCF:diskConfig": "MANUAL",
              "security_groups": [{"name": n} for n in first.security_groups],
              "adminPass": secrets.token_urlsafe(9)}
    return web.json_response({"server": answer}, status=202,
                             headers={"Location": f"{base_url(request)}/servers/{first.id}"})


def _server_create(body: dict[str, Any], srv: dict[str, Any]) -> ServerCreate:
    name = server_name(srv.get("name"))
    min_count = as_int(srv.get("min_count", 1))
    max_count = as_int(srv.get("max_count", min_count))
    if max_count < min_count:
        raise BadRequest(f"Invalid input for field/attribute min_count. Value: {min_count}. "
                         f"min_count must be <= max_count ({max_count}).")
    image_id = srv.get("imageRef") or None
    if isinstance(image_id, str):
        image_id = image_id.rstrip("/").rsplit("/", 1)[-1] or None
    root_volume: RootVolume | None = None
    #: boot from image onto a new volume (source image, destination volume, boot_index 0)
    new_root: NewRootVolume | None = None
    for bdm in srv.get("block_device_mapping_v2") or []:
        src, dest = bdm.get("source_type"), bdm.get("destination_type", "volume")
        boot = str(bdm.get("boot_index", "")) == "0"
        if src == "image" and dest == "local":
            image_id = image_id or bdm.get("uuid")
        elif src == "volume" and boot:
            root_volume = RootVolume(bdm.get("uuid"),
                                     nova_bool(bdm.get("delete_on_termination")))
        elif src == "image" and dest == "volume" and boot:
            if not bdm.get("uuid"):
                raise BadRequest("block_device_mapping_v2: source_type image needs a uuid")
            new_root = NewRootVolume(bdm["uuid"], bdm.get("volume_size"),
                                     nova_bool(bdm.get("delete_on_termination")))
            image_id = None
        elif src in ("blank", "image", "snapshot") and dest == "volume":
            raise BadRequest(f"block device mapping {src} -> volume is not supported; create "
                             "the volume first and boot from it (source_type volume)")
        elif src == "volume":
            raise BadRequest("Only the root volume may be given at create; attach others "
                             "with os-volume_attachments")
    networks = srv.get("networks")
    if networks in (None, "auto"):
        requested: list[dict[str, Any]] = []
    elif networks == "none":
        requested = [{"none": True}]
    else:
        requested = [{k: n[k] for k in ("uuid", "port", "fixed_ip", "tag") if k in n}
                     for n in networks]
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    group_id = hints.get("group")
    if isinstance(group_id, list):
        group_id = group_id[0] if group_id else None
    return ServerCreate(
        name=name, flavor_id=str(srv["flavorRef"]).rstrip("/").rsplit("/", 1)[-1],
        image_id=image_id, root_volume=root_volume, new_root_volume=new_root,
        key_name=srv.get("key_name"),
        user_data=srv.get("user_data"),  # base64 of ≤ 65535 characters (schema)
        metadata=dict(srv.get("metadata") or {}), requested_networks=requested,
        tags=list(dict.fromkeys(srv.get("tags") or [])), min_count=min_count,
        max_count=max_count,
        security_groups=[sg.get("name", "default")
                         for sg in srv.get("security_groups") or []] or ["default"],
        group_id=group_id, config_drive=nova_bool(srv.get("config_drive")),
        description=srv.get("description"), access_ipv4=srv.get("accessIPv4") or "",
        access_ipv6=srv.get("accessIPv6") or "")


# -- list / show ------------------------------------------------------------------------------

def _visible(request: web.Request) -> list[Instance]:
    auth = auth_of(request)
    valid_query(request, schemas.SERVERS_QUERY)
    q = request.query
    manager = component(request).manager
    all_tenants = q.get("all_tenants") not in (None, "0", "false", "False")
    project = q.get("project_id") or q.get("tenant_id")
    everyone = server_bodies(request).records(manager.instances)
    if auth.is_admin and (all_tenants or project):
        items = [i for i in everyone if project is None or i.project_id == project]
    else:
        items = [i for i in everyone if i.project_id == auth.project_id]
    if query_bool(q.get("deleted")) is True:
        return []
    if "name" in q:
        items = [i for i in items if name_matches(q["name"], i.name)]
    if "status" in q:
        wanted = {s.strip().upper() for s in q.getall("status")}
        bad = wanted - _STATUS_FILTER
        if bad and at_least(request, 38):
            raise BadRequest(f"Invalid status value: {', '.join(sorted(bad))}")
        items = [i for i in items if i.status in wanted]
    if "image" in q:
        items = [i for i in items if i.image_id == q["image"].rsplit("/", 1)[-1]]
    if "flavor" in q:
        items = [i for i in items if i.flavor.id == q["flavor"].rsplit("/", 1)[-1]]
    if "host" in q and auth.is_admin:
        items = [i for i in items if i.host == q["host"]]
    if "user_id" in q and auth.is_admin:
        items = [i for i in items if i.user_id == q["user_id"]]
    if "locked" in q:
        want = query_bool(q["locked"])
        items = [i for i in items if want is None or i.locked == want]
    if "tags" in q:
        tags = set(q["tags"].split(","))
        items = [i for i in items if tags <= set(i.tags)]
    if "ip" in q:
        rx = re.compile(q["ip"])
        items = [i for i in items if any(rx.search(a["addr"]) for addrs in i.addresses.values()
                                         for a in addrs)]
    reverse = q.get("sort_dir", "desc") == "desc"
    key = q.get("sort_key", "created_at")
    if key not in ("created_at", "updated_at", "display_name", "name", "uuid", "id"):
        key = "created_at"
    attr = {"display_name": "name", "uuid": "id"}.get(key, key)
    items.sort(key=attrgetter(attr, "id"), reverse=reverse)  # C-level: 1,000 servers
    return items


def name_matches(pattern: str, name: str) -> bool:
    """Nova filters names by regular expression; a client's expression run on the event loop
    could backtrack for minutes ("(a|a)*b"), so the forms clients use are kept — a literal
    part of the name, anchored by ^ and/or $ — and every other character is literal."""
    start, end = pattern.startswith("^"), pattern.endswith("$") and len(pattern) > 1
    core = pattern[1 if start else 0:len(pattern) - (1 if end else 0)]
    if start and end:
        return name == core
    if start:
        return name.startswith(core)
    if end:
        return name.endswith(core)
    return core in name


def _page(request: web.Request, items: list[Instance], detail: bool) -> web.Response:
    q = request.query
    marker = q.get("marker")
    if marker:
        ids = [i.id for i in items]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        items = items[ids.index(marker) + 1:]
    limit = None
    if "limit" in q:  # digits only (schema); Nova caps a page silently at its max_limit
        limit = min(int(q["limit"]), MAX_LIMIT)
        items = items[:limit]
    views = ServerViews(request)
    body: dict[str, Any] = {} if detail else {"servers": [views.summary(i) for i in items]}
    if limit is not None and items and len(items) == limit:
        params = {k: v for k, v in q.items() if k != "marker"}
        params["marker"] = items[-1].id
        qs = "&".join(f"{k}={v}" for k, v in params.items())
        suffix = "/detail" if detail else ""
        body["servers_links"] = [{"rel": "next",
                                  "href": f"{base_url(request)}/servers{suffix}?{qs}"}]
    if not detail:
        return json_answer(body)
    # the bodies come encoded (listing.py): the page is their concatenation
    servers = b"[" + b",".join(server_bodies(request).details(views, items)) + b"]"
    links = b"," + json_bytes(body)[1:] if body else b"}"
    return web.Response(body=b'{"servers":' + servers + links, content_type="application/json",
                        charset="utf-8")


async def list_servers(request: web.Request) -> web.Response:
    authorize(request, "compute:list_servers")
    return _page(request, _visible(request), detail=False)


async def list_servers_detail(request: web.Request) -> web.Response:
    authorize(request, "compute:list_servers")
    return _page(request, _visible(request), detail=True)


async def show_server(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"server": server_detail(request, inst)})


async def server_diagnostics(request: web.Request) -> web.Response:
    """Nova's admin diagnostics from the driver's domain stats: the 2.48 standard shape, or
    the legacy flat keys (cpu0_time, memory, vda_read, vnet0_rx …) below 2.48."""
    inst = require_instance(request, request.match_info["id"], "compute:get_server_diagnostics")
    if inst.power_state != PowerState.RUNNING:
        raise Conflict(f"Cannot 'get_diagnostics' instance {inst.id} while it is in "
                       f"vm_state {inst.vm_state.value}")
    st = await component(request).manager.driver.stats(inst.id)
    vcpus = int(inst.flavor.vcpus or 1)
    mem_used_mb = (st.memory_rss_kib or st.memory_actual_kib) // 1024
    if not at_least(request, 48):
        return web.json_response({
            "cpu0_time": st.cpu_time_ns, "memory": st.memory_actual_kib,
            "memory-actual": st.memory_actual_kib, "memory-rss": st.memory_rss_kib,
            "vda_read": st.disk_read_bytes, "vda_write": st.disk_write_bytes,
            "vnet0_rx": st.net_rx_bytes, "vnet0_tx": st.net_tx_bytes})
    return web.json_response({
        "state": "running", "driver": "libvirt", "hypervisor": "qemu",
        "hypervisor_os": "linux", "uptime": None, "config_drive": bool(inst.config_drive),
        "num_cpus": vcpus, "num_disks": 1, "num_nics": len(inst.ports),
        "memory_details": {"maximum": int(inst.flavor.ram or 0), "used": mem_used_mb},
        "cpu_details": [{"id": None, "time": st.cpu_time_ns, "utilisation": None}],
        "nic_details": [{"mac_address": None, "rx_octets": st.net_rx_bytes,
                         "tx_octets": st.net_tx_bytes, "rx_drop": None, "rx_errors": None,
                         "rx_packets": None, "rx_rate": None, "tx_drop": None,
                         "tx_errors": None, "tx_packets": None, "tx_rate": None}],
        "disk_details": [{"read_bytes": st.disk_read_bytes, "read_requests": None,
                          "write_bytes": st.disk_write_bytes, "write_requests": None,
                          "errors_count": None}]})


async def update_server(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:update_server")
    body = await valid_body(request, schemas.SERVER_UPDATE)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = server_name(body["name"])
    if "description" in body:
        changes["description"] = body["description"]
    for key, attr in (("accessIPv4", "access_ipv4"), ("accessIPv6", "access_ipv6")):
        if key in body:
            changes[attr] = body[key] or ""
    inst = await component(request).manager.update(inst.id, changes)
    return web.json_response({"server": server_detail(request, inst)})


async def delete_server(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:delete_server")
    check_not_locked(request, inst)
    await component(request).manager.delete(inst.id)
    return web.Response(status=204)


# -- actions ------------------------------------------------------------------------------------

async def server_action(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:server_action")
    body = await valid_body(request, schemas.SERVER_ACTION)
    (action, args), = body.items()
    args = args if isinstance(args, dict) else {}
    handler = _ACTIONS.get(action)
    if handler is None:
        raise BadRequest(f"Unsupported server action: {action}")
    if action not in ("os-getConsoleOutput", "os-getSerialConsole", "lock", "unlock",
                      "os-getVNCConsole", "os-getSPICEConsole"):
        check_not_locked(request, inst)
    if action == "unlock" and inst.locked and not auth_of(request).is_admin \
            and inst.user_id != auth_of(request).user_id:
        raise Forbidden("Only the user who locked the instance or an admin may unlock it.")
    return await handler(request, inst, args)


def _accepted() -> web.Response:
    return web.Response(status=202)


async def _start(request, inst, args):
    await component(request).manager.start_instance(inst.id)
    return _accepted()


async def _stop(request, inst, args):
    await component(request).manager.stop_instance(inst.id)
    return _accepted()


async def _reboot(request, inst, args):
    kind = args["type"].upper()
    await component(request).manager.reboot(inst.id, hard=kind == "HARD")
    return _accepted()


def _simple(method: str):
    async def run(request, inst, args):
        await getattr(component(request).manager, method)(inst.id)
        return _accepted()
    return run


async def _resize(request, inst, args):
    flavor = find_flavor(request, str(args["flavorRef"]).rstrip("/").rsplit("/", 1)[-1])
    await component(request).manager.resize(inst.id, flavor.snapshot())
    return _accepted()


async def _rebuild(request, inst, args):
    image_id = args["imageRef"].rstrip("/").rsplit("/", 1)[-1]
    name = server_name(args["name"]) if args.get("name") is not None else None
    metadata = dict(args["metadata"]) if "metadata" in args else None
    inst = await component(request).service.rebuild_server(inst, image_id, name, metadata)
    return web.json_response({"server": server_detail(request, inst)}, status=202)


async def _rescue(request, inst, args):
    ref = args.get("rescue_image_ref")
    image_id = str(ref).rstrip("/").rsplit("/", 1)[-1] if ref else None
    await component(request).manager.rescue(inst.id, image_id)
    return web.json_response({"adminPass": args.get("adminPass") or secrets.token_urlsafe(9)})


async def _create_image(request, inst, args):
    image_id = await component(request).manager.create_image(
        inst.id, args["name"], dict(args.get("metadata") or {}))
    root = ctx_of(request).config.api.base_url + "/image/v2/images/" + image_id
    if at_least(request, 45):
        return web.json_response({"image_id": image_id}, status=202)
    return web.Response(status=202, headers={"Location": root})


async def _lock(request, inst, args):
    await component(request).manager.set_locked(inst.id, True, args.get("locked_reason"))
    return _accepted()


async def _unlock(request, inst, args):
    await component(request).manager.set_locked(inst.id, False)
    return _accepted()


async def _console_output(request, inst, args):
    length = args.get("length")
    if length is not None:
        length = as_int(length)  # -1 … 2^31-1 (schema)
        if length == -1:
            length = None
    output = await component(request).manager.console_output(inst.id, length)
    return web.json_response({"output": output})


async def _get_serial_console(request, inst, args):
    if args.get("type", "serial") != "serial":
        raise BadRequest("Only the serial console type is offered.")
    url = _console_url(request, inst)
    return web.json_response({"console": {"type": "serial", "url": url}})


def _group_name(args: dict) -> str:
    name = args.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255 \
            or any(ord(c) < 32 for c in name):
        raise BadRequest("Invalid input for field/attribute name: a security group name or id "
                         "(1 to 255 characters) is required.")
    return name


async def _add_security_group(request, inst, args):
    """Nova's addSecurityGroup: the group goes on every port of the server (the firewall
    follows at once); removeSecurityGroup takes it off."""
    await component(request).manager.change_security_group(inst.id, add=_group_name(args))
    return _accepted()


async def _remove_security_group(request, inst, args):
    await component(request).manager.change_security_group(inst.id, remove=_group_name(args))
    return _accepted()


async def _not_here(request, inst, args):
    raise BadRequest("This appliance has one compute host: there is nowhere to migrate to.")


async def _force_delete(request, inst, args):
    await component(request).manager.delete(inst.id)
    return _accepted()


_ACTIONS = {
    "os-start": _start, "os-stop": _stop, "reboot": _reboot,
    "pause": _simple("pause"), "unpause": _simple("unpause"),
    "suspend": _simple("suspend"), "resume": _simple("resume"),
    "resize": _resize, "confirmResize": _simple("confirm_resize"),
    "revertResize": _simple("revert_resize"), "rebuild": _rebuild,
    "rescue": _rescue, "unrescue": _simple("unrescue"), "createImage": _create_image,
    "lock": _lock, "unlock": _unlock, "os-getConsoleOutput": _console_output,
    "os-getSerialConsole": _get_serial_console, "addSecurityGroup": _add_security_group,
    "removeSecurityGroup": _remove_security_group, "migrate": _not_here,
    "os-migrateLive": _not_here, "forceDelete": _force_delete,
}


# -- metadata and tags ---------------------------------------------------------------------

async def show_server_password(request: web.Request) -> web.Response:
    """Nova's os-server-password: what the guest posted to the metadata service's password
    file (encrypted by the guest with its key pair's public key), "" when nothing yet."""
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"password": component(request).manager.passwords.get(inst.id)})


async def clear_server_password(request: web.Request) -> web.Response:
    """Forget the posted password, so the guest may post a new one (Nova: 204)."""
    inst = require_instance(request, request.match_info["id"], "compute:update_server")
    await component(request).manager.passwords.clear(inst.id)
    return web.Response(status=204)


async def get_metadata(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"metadata": dict(inst.metadata)})


async def set_metadata(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:update_server")
    check_not_locked(request, inst)
    body = await valid_body(request, schemas.METADATA)
    meta = dict(body["metadata"])
    new = meta if request.method == "PUT" else {**inst.metadata, **meta}
    manager = component(request).manager
    if len(new) > manager.quota_limits(inst.project_id)["metadata_items"]:
        raise Forbidden("Quota exceeded for metadata_items")
    inst = await manager.update(inst.id, {"metadata": new})
    return web.json_response({"metadata": inst.metadata})


async def delete_metadata_item(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:update_server")
    key = request.match_info["key"]
    if key not in inst.metadata:
        raise NotFound(f"Metadata item {key} was not found")
    meta = {k: v for k, v in inst.metadata.items() if k != key}
    await component(request).manager.update(inst.id, {"metadata": meta})
    return web.Response(status=204)


async def list_tags(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"tags": list(inst.tags)})


async def put_tag(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:update_server")
    tag = request.match_info["tag"]
    validate(schemas.SERVER_TAG, {"tag": tag})  # the path is client input like a body
    if tag not in inst.tags:
        if len(inst.tags) >= schemas.MAX_TAGS:
            raise BadRequest(f"Invalid input for field/attribute tag. The number of tags "
                             f"exceeded the per-server limit {schemas.MAX_TAGS}.")
        await component(request).manager.update(inst.id, {"tags": [*inst.tags, tag]})
    return web.Response(status=201 if tag not in inst.tags else 204)


async def delete_tag(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:update_server")
    tag = request.match_info["tag"]
    if tag not in inst.tags:
        raise NotFound(f"Tag {tag} not found")
    await component(request).manager.update(inst.id, {"tags": [t for t in inst.tags if t != tag]})
    return web.Response(status=204)


# -- volume attachments and interfaces ----------------------------------------------------------

def _attachment_view(inst: Instance, att: VolumeAttachment) -> dict[str, Any]:
    return {"id": att.volume_id, "serverId": inst.id, "volumeId": att.volume_id,
            "device": att.device}


async def list_volume_attachments(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"volumeAttachments": [_attachment_view(inst, a)
                                                    for a in inst.volume_attachments]})


async def show_volume_attachment(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    vid = request.match_info["volume_id"]
    for a in inst.volume_attachments:
        if a.volume_id == vid:
            return web.json_response({"volumeAttachment": _attachment_view(inst, a)})
    raise NotFound(f"volume {vid} is not attached to server {inst.id}")


async def attach_volume(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:attach_volume")
    check_not_locked(request, inst)
    body = await valid_body(request, schemas.VOLUME_ATTACH)
    vid = body["volumeId"]
    att = await component(request).manager.attach_volume(inst.id, vid, body.get("device"))
    return web.json_response({"volumeAttachment": _attachment_view(inst, att)})


async def detach_volume(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:detach_volume")
    check_not_locked(request, inst)
    await component(request).manager.detach_volume(inst.id, request.match_info["volume_id"])
    return web.Response(status=202)


def _interface_view(inst: Instance, p: PortBinding) -> dict[str, Any]:
    return {"port_id": p.port_id, "net_id": p.network_id, "mac_addr": p.mac,
            "port_state": "ACTIVE",
            "fixed_ips": [{"ip_address": ip, "subnet_id": None} for ip in p.fixed_ips]}


async def list_ips(request: web.Request) -> web.Response:
    """GET /servers/{id}/ips: the addresses by network, Nova's basic form (version, addr)."""
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"addresses": _basic_addresses(request, inst)})


async def show_ips(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    label = request.match_info["network"]
    addresses = _basic_addresses(request, inst)
    if label not in addresses:
        raise NotFound("Network not found")
    return web.json_response({label: addresses[label]})


def _basic_addresses(request: web.Request, inst: Any) -> dict[str, list[dict[str, Any]]]:
    return {net: [{"version": a["version"], "addr": a["addr"]} for a in addrs]
            for net, addrs in addresses_view(request, inst).items()}


async def list_server_security_groups(request: web.Request) -> web.Response:
    """GET /servers/{id}/os-security-groups: the groups the server's ports hold, in Nova's
    (pre-Neutron) shape, which Ansible's openstack.cloud.server reads."""
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    net = ctx_of(request).components.network
    groups = net.instance_security_groups(inst.id) if net is not None else []
    return web.json_response({"security_groups": [{
        "id": g.id, "name": g.name, "description": g.description, "tenant_id": g.project_id,
        "rules": [{"id": r.id, "parent_group_id": g.id, "ip_protocol": r.protocol,
                   "from_port": r.from_port if r.from_port is not None else -1,
                   "to_port": r.to_port if r.to_port is not None else -1,
                   "ip_range": {"cidr": r.cidr} if r.cidr else {},
                   "group": {"name": next((o.name for o in groups
                                           if o.id == r.remote_group_id), None),
                             "tenant_id": g.project_id} if r.remote_group_id else {}}
                  for r in g.rules]} for g in groups]})


async def list_interfaces(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:get_server")
    return web.json_response({"interfaceAttachments": [_interface_view(inst, p)
                                                       for p in inst.ports]})


async def attach_interface(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:attach_interface")
    check_not_locked(request, inst)
    body = await valid_body(request, schemas.INTERFACE_ATTACH)
    req: dict[str, Any] = {}
    if body.get("port_id"):
        req["port"] = body["port_id"]
    elif body.get("net_id"):
        req["uuid"] = body["net_id"]
        ips = body.get("fixed_ips") or []
        if ips:
            req["fixed_ip"] = ips[0].get("ip_address")
    else:
        raise BadRequest("interfaceAttachment needs port_id or net_id")
    port = await component(request).manager.attach_interface(inst.id, req)
    return web.json_response({"interfaceAttachment": _interface_view(inst, port)})


async def detach_interface(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:detach_interface")
    check_not_locked(request, inst)
    await component(request).manager.detach_interface(inst.id, request.match_info["port_id"])
    return web.Response(status=202)


# -- serial console ---------------------------------------------------------------------------

def _console_url(request: web.Request, inst: Instance) -> str:
    if inst.vm_state not in (VmState.ACTIVE, VmState.RESCUED, VmState.RESIZED) \
            or inst.task_state == TaskState.DELETING:
        raise Conflict(f"Instance {inst.id} is not running (status {inst.status}).")
    auth = auth_of(request)
    token = component(request).console_tokens.issue(inst.id, inst.project_id,
                                                    auth.user_name if auth else "")
    base = ctx_of(request).config.api.base_url
    ws_base = "wss://" + base[len("https://"):] if base.startswith("https://") \
        else "ws://" + base.split("://", 1)[-1]
    return f"{ws_base}/compute/console?token={token}"


async def remote_console(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"], "compute:create_console")
    body = await valid_body(request, schemas.REMOTE_CONSOLE)
    if body["protocol"] != "serial" or body["type"] != "serial":
        raise BadRequest("Only protocol 'serial' with type 'serial' is offered.")
    url = _console_url(request, inst)
    return web.json_response({"remote_console": {"protocol": "serial", "type": "serial",
                                                 "url": url}})


def _origin_allowed(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return True
    from urllib.parse import urlsplit
    netloc = urlsplit(origin).netloc.lower()
    allowed = {request.host.lower(),
               urlsplit(ctx_of(request).config.api.base_url).netloc.lower()}
    return netloc in allowed


@public
async def console_websocket(request: web.Request) -> web.StreamResponse:
    """The serial proxy: output to every watcher as binary frames, input from the writer."""
    if not _origin_allowed(request):
        raise Forbidden("Cross-origin console connections are refused.")
    comp = component(request)
    grant = comp.console_tokens.consume(request.query.get("token"))
    inst = comp.manager.instances.get(grant.instance_id)
    if inst is None:
        raise NotFound(f"Instance {grant.instance_id} could not be found.")
    ws = web.WebSocketResponse(heartbeat=20, protocols=("binary", "base64"))
    await ws.prepare(request)
    request.app["websockets"].add(ws)
    hub = comp.console_proxy.hub(inst.id)
    try:
        watcher = await hub.attach(grant.holder)
    except (ServiceUnavailable, Conflict, NotFound) as exc:
        request.app["websockets"].discard(ws)
        await ws.close(code=1011, message=str(exc)[:120].encode())
        return ws
    import asyncio

    async def pump_out() -> None:
        while True:
            data = await watcher.read()
            if data is None:
                await ws.close(code=1000, message=b"console closed")
                return
            await ws.send_bytes(data)

    out = asyncio.create_task(pump_out())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await hub.write(watcher, msg.data)
            elif msg.type == WSMsgType.TEXT:
                await hub.write(watcher, msg.data.encode())
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        out.cancel()
        await hub.detach(watcher)
        request.app["websockets"].discard(ws)
    return ws
