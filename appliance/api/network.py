"""Neutron v2.0 subset: networks, subnets, ports, security groups and rules, routers, floating
IPs, quotas, extensions — and the admin DHCP lease listing.

Served under /network (the catalog URL; the SDK appends /v2.0). Bodies follow what the real
`openstack` CLI needs (/work/shared/OPENSTACK-CLIENTS.md §5): lists are never null, every
resource carries tags, created_at/updated_at, revision_number, project_id and tenant_id.

Filters: any attribute of a resource may be given as a query parameter, repeated for several
values (`?name=a&name=b`); `fixed_ips=ip_address=…`/`fixed_ips=subnet_id=…` filter ports;
`fields` (repeatable) picks the attributes returned by GETs; `sort_key` and `sort_dir` are
accepted and ignored; `limit`/`marker` page. Collections take Neutron's bulk form
(`{"networks": [{…}, {…}]}`: all or nothing), and every resource has Neutron's tag
sub-resource (`/{collection}/{id}/tags[/{tag}]`, the standard-attr-tag extension).

Monostack extension (admin only):
    GET /network/v2.0/monostack-dhcp-leases   {"leases": [{id, network_id, port_id, project_id,
        mac, ip, state (active|released|expired|declined), hostname, client_id, granted_at,
        expires_at, renewed_at, updated_at}]}  (filters: network_id, port_id, mac, ip, state)
    GET /network/v2.0/monostack-dhcp-stats    {"dhcp_stats": {bridge: {received, offers, acks…}}}
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from appliance.api.network_tags import Tagged, tag_routes
from appliance.api.util import (
    BODY_OVERRIDE,
    json_body,
    auth_of,
    authorize,
    ctx_of,
    paginate,
    public,
)
from appliance.api.schemas import network as schemas
from appliance.api.schemas.types import PAGE, as_int
from appliance.api.validation import valid_body, valid_query, validate
from appliance.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from appliance.identity.policy import AuthContext, network_visible, owns
from appliance.network.manager import UNSET, NetworkManager
from appliance.network.records import (
    QUOTA_DEFAULTS,
    FloatingIP,
    LeaseRecord,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)

PREFIX = "/network/v2.0"

EXTENSIONS = [
    ("security-group", "security-group", "The security groups extension."),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding."),
    ("external-net", "Neutron external network", "Adds external network attribute."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "enable_snat."),
    ("port-security", "Port Security", "Provides port security"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("quotas", "Quota management support", "Expose functions for quotas management"),
    ("quota_details", "Quota details management support", "Quota usage details"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra DHCP options on ports"),
    ("standard-attr-tag", "Tag support for resources", "Tags on standard resources"),
    ("standard-attr-timestamp", "Resource timestamps", "created_at and updated_at"),
    ("standard-attr-revisions", "Resource revision numbers", "revision_number"),
    ("standard-attr-description", "standard-attr-description", "description attribute"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("project-id", "project_id field enabled", "Extension that indicates project_id is enabled."),
    ("stateful-security-group", "Stateful security group", "stateful attribute"),
    ("monostack-dhcp-leases", "DHCP leases", "The in-process DHCP server's lease records."),
]


def _mgr(request: web.Request) -> NetworkManager:
    component = ctx_of(request).components.network
    if component is None:
        raise ServiceUnavailable("The network service is not running.")
    return component.manager


def _base(request: web.Request) -> str:
    return ctx_of(request).config.api.base_url


def _std(rec: Any, project_id: str | None = None) -> dict[str, Any]:
    pid = rec.project_id if project_id is None else project_id
    return {"project_id": pid, "tenant_id": pid, "tags": list(getattr(rec, "tags", [])),
            "description": rec.description, "created_at": rec.created_at,
            "updated_at": rec.updated_at, "revision_number": rec.revision_number}


# ---- views --------------------------------------------------------------------------------------

def network_view(mgr: NetworkManager, net: Network) -> dict[str, Any]:
    subnets = sorted(mgr.subnets.list(lambda s: s.network_id == net.id), key=lambda s: s.created_at)
    return {"id": net.id, "name": net.name, "admin_state_up": net.admin_state_up,
            "status": net.status, "shared": net.shared, "router:external": net.external,
            "mtu": net.mtu, "port_security_enabled": net.port_security_enabled,
            "subnets": [s.id for s in subnets], "availability_zone_hints": [],
            "availability_zones": ["nova"], "ipv4_address_scope": None,
            "ipv6_address_scope": None, "is_default": False, "l2_adjacency": True,
            "dns_domain": "", "qos_policy_id": None, "provider:network_type": "flat",
            "provider:physical_network": None, "provider:segmentation_id": None,
            **_std(net)}


def subnet_view(sn: Subnet) -> dict[str, Any]:
    return {"id": sn.id, "name": sn.name, "network_id": sn.network_id, "ip_version": 4,
            "cidr": sn.cidr, "gateway_ip": sn.gateway_ip,
            "allocation_pools": [dict(p) for p in sn.allocation_pools],
            "dns_nameservers": list(sn.dns_nameservers),
            "host_routes": [dict(r) for r in sn.host_routes], "enable_dhcp": sn.enable_dhcp,
            "ipv6_ra_mode": None, "ipv6_address_mode": None, "subnetpool_id": None,
            "service_types": [], "segment_id": None, "dns_publish_fixed_ip": False,
            **_std(sn)}


def port_view(port: Port) -> dict[str, Any]:
    return {"id": port.id, "name": port.name, "network_id": port.network_id,
            "mac_address": port.mac_address, "admin_state_up": port.admin_state_up,
            "status": port.status, "device_id": port.device_id,
            "device_owner": port.device_owner,
            "fixed_ips": [dict(f) for f in port.fixed_ips],
            "allowed_address_pairs": [dict(p) for p in port.allowed_address_pairs],
            "extra_dhcp_opts": list(port.extra_dhcp_opts),
            "security_groups": list(port.security_groups),
            "port_security_enabled": port.port_security_enabled,
            "binding:host_id": port.binding_host_id, "binding:vif_type":
                "tap" if port.binding_host_id else "unbound",
            "binding:vnic_type": "normal", "binding:profile": {},
            "binding:vif_details": {"port_filter": port.port_security_enabled,
                                    "tap_name": port.tap_name},
            "dns_name": "", "dns_assignment": [], "ip_allocation": "immediate",
            "propagate_uplink_status": False, "qos_policy_id": None,
            "qos_network_policy_id": None, "resource_request": None,
            **_std(port)}


def rule_view(r: SecurityGroupRule) -> dict[str, Any]:
    return {"id": r.id, "security_group_id": r.security_group_id, "direction": r.direction,
            "ethertype": r.ethertype, "protocol": r.protocol,
            "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
            "remote_ip_prefix": r.remote_ip_prefix, "remote_group_id": r.remote_group_id,
            "remote_address_group_id": None, "normalized_cidr": r.remote_ip_prefix,
            "project_id": r.project_id, "tenant_id": r.project_id, "description": r.description,
            "created_at": r.created_at, "updated_at": r.updated_at,
            "revision_number": r.revision_number}


def sg_view(mgr: NetworkManager, sg: SecurityGroup) -> dict[str, Any]:
    rules = sorted(mgr.sg_rules.list(lambda r: r.security_group_id == sg.id),
                   key=lambda r: (r.created_at, r.id))
    return {"id": sg.id, "name": sg.name, "stateful": sg.stateful, "shared": False,
            "security_group_rules": [rule_view(r) for r in rules], **_std(sg)}


def router_view(mgr: NetworkManager, r: Router) -> dict[str, Any]:
    gw = None
    if r.gateway_network_id:
        port = mgr.ports.get(r.gateway_port_id or "")
        gw = {"network_id": r.gateway_network_id, "enable_snat": r.enable_snat,
              "external_fixed_ips": [dict(f) for f in port.fixed_ips] if port else []}
    return {"id": r.id, "name": r.name, "admin_state_up": r.admin_state_up,
            "status": r.status, "external_gateway_info": gw, "routes": [],
            "distributed": False, "ha": False, "availability_zone_hints": [],
            "availability_zones": ["nova"], "flavor_id": None, **_std(r)}


def fip_view(f: FloatingIP) -> dict[str, Any]:
    return {"id": f.id, "floating_network_id": f.floating_network_id,
            "floating_ip_address": f.floating_ip_address, "port_id": f.port_id,
            "fixed_ip_address": f.fixed_ip_address, "router_id": f.router_id,
            "status": f.status, "port_details": None, "port_forwardings": [],
            "dns_domain": "", "dns_name": "", "qos_policy_id": None, **_std(f)}


def lease_view(r: LeaseRecord) -> dict[str, Any]:
    return {"id": r.id, "network_id": r.network_id, "port_id": r.port_id,
            "project_id": r.project_id, "mac": r.mac, "ip": r.ip, "state": r.state.value,
            "bridge": r.bridge, "hostname": r.hostname, "client_id": r.client_id,
            "granted_at": r.granted_at, "expires_at": r.expires_at, "renewed_at": r.renewed_at,
            "updated_at": r.updated_at}


# ---- filtering ----------------------------------------------------------------------------------

IGNORED_PARAMS = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse",
                  "not-tags", "not-tags-any", "verbose"}


def _matches(item: dict[str, Any], key: str, values: list[str]) -> bool:
    if key in ("tags", "tags-any"):
        wanted = [t for v in values for t in v.split(",") if t]
        have = set(item.get("tags", []))
        return all(t in have for t in wanted) if key == "tags" else any(t in have for t in wanted)
    if key == "fixed_ips":
        for v in values:
            k, _, want = v.partition("=")
            if not any(f.get(k) == want for f in item.get("fixed_ips", [])):
                return False
        return True
    if key not in item:
        return True  # unknown filters are ignored, as Neutron does by default
    value = item[key]
    if isinstance(value, bool):
        return any(v.lower() == str(value).lower() for v in values)
    if value is None:
        return any(v in ("", "None", "null") for v in values)
    if isinstance(value, list):
        return any(v in value for v in values)
    return str(value) in values


def _filtered(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    valid_query(request, PAGE)
    for key in set(request.query.keys()) - IGNORED_PARAMS:
        values = request.query.getall(key)
        items = [i for i in items if _matches(i, key, values)]
    items.sort(key=lambda i: (i.get("created_at") or "", i["id"]))
    items = paginate(items, request, key=lambda i: i["id"])
    fields = _fields(request)
    return [_pick(i, fields) for i in items] if fields else items


def _fields(request: web.Request) -> list[str]:
    """`?fields=a&fields=b` (or `fields=a,b`): the attributes a GET answers with, as Neutron."""
    return [f for v in request.query.getall("fields", []) for f in v.split(",") if f]


def _pick(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {k: item[k] for k in fields if k in item}


def _with_fields(getter: Callable[[web.Request], Awaitable[web.Response]]
                 ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A single-resource GET honours `fields` too; only then is its answer re-shaped."""
    async def handler(request: web.Request) -> web.Response:
        response = await getter(request)
        fields = _fields(request)
        if not fields or response.status != 200 or response.text is None:
            return response
        body = json.loads(response.text)
        key = next(iter(body))
        return _json(key, _pick(body[key], fields))
    handler.__name__ = getattr(getter, "__name__", "get")
    return handler


# ---- policy helpers -----------------------------------------------------------------------------

async def _create_body(request: web.Request, action: str, schema: dict[str, Any]
                       ) -> tuple[AuthContext, dict[str, Any], str]:
    """Policy first (a reader never gets a 400 for a body), then the body and target project.
    (A dict stored as a port name once broke every later DHCP rebuild for everyone: the
    schema types every attribute before anything reads it.)"""
    auth = authorize(request, action)
    body = await valid_body(request, schema)
    project_id = body.get("project_id") or body.get("tenant_id") or auth.project_id
    if not owns(auth, project_id):
        raise Forbidden(f"Policy doesn't allow {action} to be performed on another project.")
    if not project_id:
        raise BadRequest("A project-scoped token is required.")
    return auth, body, project_id


def _check_owner(auth: AuthContext, project_id: str, visible: bool, what: str) -> None:
    if owns(auth, project_id):
        return
    if visible:
        raise Forbidden(f"Policy doesn't allow this operation on {what}.")
    raise NotFound(f"{what} could not be found.")


def _own(auth: AuthContext, project_id: str, what: str) -> None:
    if not owns(auth, project_id):
        raise NotFound(f"{what} could not be found.")


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _json(key: str, value: Any, status: int = 200) -> web.Response:
    return web.json_response({key: value}, status=status)


# ---- discovery and extensions -------------------------------------------------------------------

@public
async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": [{
        "id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": _base(request) + PREFIX + "/"}]}]})


@public
async def resources(request: web.Request) -> web.Response:
    base = _base(request) + PREFIX
    names = [("network", "networks"), ("subnet", "subnets"), ("port", "ports"),
             ("security_group", "security-groups"),
             ("security_group_rule", "security-group-rules"), ("router", "routers"),
             ("floatingip", "floatingips"), ("quota", "quotas")]
    return web.json_response({"resources": [
        {"name": n, "collection": c, "links": [{"rel": "self", "href": f"{base}/{c}"}]}
        for n, c in names]})


def _ext(alias: str, name: str, description: str) -> dict[str, Any]:
    return {"alias": alias, "name": name, "description": description,
            "updated": "2024-01-01T00:00:00-00:00", "links": []}


async def list_extensions(request: web.Request) -> web.Response:
    return _json("extensions", [_ext(*e) for e in EXTENSIONS])


async def get_extension(request: web.Request) -> web.Response:
    alias = request.match_info["alias"]
    for e in EXTENSIONS:
        if e[0] == alias:
            return _json("extension", _ext(*e))
    raise NotFound(f"Extension with alias {alias} does not exist")


# ---- networks -----------------------------------------------------------------------------------

def _visible_network(request: web.Request, network_id: str) -> Network:
    auth = auth_of(request)
    mgr = _mgr(request)
    net = mgr.networks.get(network_id)
    if net is None or not network_visible(net, auth.project_id, auth.is_admin):
        raise NotFound(f"Network {network_id} could not be found.")
    return net


async def list_networks(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_networks")
    mgr = _mgr(request)
    nets = mgr.networks.list(lambda n: network_visible(n, auth.project_id, auth.is_admin))
    return _json("networks", _filtered(request, [network_view(mgr, n) for n in nets]))


async def create_network(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_network", schemas.NETWORK_CREATE)
    external = _bool(body, "router:external", False)
    shared = _bool(body, "shared", False)
    if external:
        authorize(request, "network:create_external_network")
    if shared:
        authorize(request, "network:create_shared_network")
    net = await _mgr(request).create_network(
        project_id, name=body.get("name") or "",
        admin_state_up=_bool(body, "admin_state_up", True), shared=shared, external=external,
        mtu=body.get("mtu"), port_security_enabled=_bool(body, "port_security_enabled", True),
        description=body.get("description") or "", tags=body.get("tags"))
    return _json("network", network_view(_mgr(request), net), 201)


async def get_network(request: web.Request) -> web.Response:
    authorize(request, "network:get_network")
    net = _visible_network(request, request.match_info["id"])
    return _json("network", network_view(_mgr(request), net))


async def update_network(request: web.Request) -> web.Response:
    auth = authorize(request, "network:update_network")
    net = _visible_network(request, request.match_info["id"])
    _check_owner(auth, net.project_id, True, f"Network {net.id}")
    body = await valid_body(request, schemas.NETWORK_UPDATE)
    changes = {k: body[k] for k in ("name", "admin_state_up", "shared", "mtu", "description",
                                    "port_security_enabled", "tags") if k in body}
    if "router:external" in body:
        changes["external"] = _bool(body, "router:external", False)
    if changes.get("external") or changes.get("shared"):
        authorize(request, "network:create_external_network")
    net = await _mgr(request).update_network(net, changes)
    return _json("network", network_view(_mgr(request), net))


async def delete_network(request: web.Request) -> web.Response:
    auth = authorize(request, "network:delete_network")
    net = _visible_network(request, request.match_info["id"])
    _check_owner(auth, net.project_id, True, f"Network {net.id}")
    await _mgr(request).delete_network(net.id)
    return web.Response(status=204)


# ---- subnets ------------------------------------------------------------------------------------

def _subnet_visible(auth: AuthContext, net: Network | None) -> bool:
    """Neutron's get_subnet rule: admin, owner or a shared network. An external network is
    visible to all (to pick it for a gateway or a floating IP), its subnets are not."""
    return net is not None and (auth.is_admin or net.project_id == auth.project_id or net.shared)


def _visible_subnet(request: web.Request, subnet_id: str) -> Subnet:
    mgr = _mgr(request)
    sn = mgr.subnets.get(subnet_id)
    if sn is None or not _subnet_visible(auth_of(request), mgr.networks.get(sn.network_id)):
        raise NotFound(f"Subnet {subnet_id} could not be found.")
    return sn


async def list_subnets(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_subnets")
    mgr = _mgr(request)
    visible = {n.id for n in mgr.networks.list(lambda n: _subnet_visible(auth, n))}
    subnets = mgr.subnets.list(lambda s: s.network_id in visible)
    return _json("subnets", _filtered(request, [subnet_view(s) for s in subnets]))


async def create_subnet(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_subnet", schemas.SUBNET_CREATE)
    net = _visible_network(request, body["network_id"])
    _check_owner(auth, net.project_id, True, f"Network {net.id}")
    ip_version = body.get("ip_version", 4)
    sn = await _mgr(request).create_subnet(
        project_id, net.id, cidr=body["cidr"], name=body.get("name") or "",
        gateway_ip=body["gateway_ip"] if "gateway_ip" in body else UNSET,
        allocation_pools=body.get("allocation_pools"),
        dns_nameservers=body.get("dns_nameservers"), host_routes=body.get("host_routes"),
        enable_dhcp=_bool(body, "enable_dhcp", True), ip_version=ip_version,
        description=body.get("description") or "", tags=body.get("tags"))
    return _json("subnet", subnet_view(sn), 201)


async def get_subnet(request: web.Request) -> web.Response:
    authorize(request, "network:get_subnet")
    return _json("subnet", subnet_view(_visible_subnet(request, request.match_info["id"])))


async def update_subnet(request: web.Request) -> web.Response:
    auth = authorize(request, "network:update_subnet")
    sn = _visible_subnet(request, request.match_info["id"])
    _check_owner(auth, sn.project_id, True, f"Subnet {sn.id}")
    body = await valid_body(request, schemas.SUBNET_UPDATE)
    sn = await _mgr(request).update_subnet(sn, body)
    return _json("subnet", subnet_view(sn))


async def delete_subnet(request: web.Request) -> web.Response:
    auth = authorize(request, "network:delete_subnet")
    sn = _visible_subnet(request, request.match_info["id"])
    _check_owner(auth, sn.project_id, True, f"Subnet {sn.id}")
    await _mgr(request).delete_subnet(sn.id)
    return web.Response(status=204)


# ---- ports --------------------------------------------------------------------------------------

def _port(request: web.Request) -> Port:
    auth = auth_of(request)
    port = _mgr(request).ports.get(request.match_info["id"])
    if port is None or not owns(auth, port.project_id):
        raise NotFound(f"Port {request.match_info['id']} could not be found.")
    return port


async def list_ports(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_ports")
    ports = _mgr(request).ports.list(lambda p: owns(auth, p.project_id))
    return _json("ports", _filtered(request, [port_view(p) for p in ports]))


async def create_port(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_port", schemas.PORT_CREATE)
    net = _visible_network(request, body["network_id"])
    if not (auth.is_admin or net.project_id == project_id or net.shared):
        raise Forbidden(f"Policy doesn't allow creating a port on network {net.id}.")
    sgs = body.get("security_groups")
    port = await _mgr(request).create_port(
        project_id, net.id, is_admin=auth.is_admin, name=body.get("name") or "",
        mac_address=body.get("mac_address"), fixed_ips=body.get("fixed_ips"),
        device_id=body.get("device_id") or "", device_owner=body.get("device_owner") or "",
        admin_state_up=_bool(body, "admin_state_up", True),
        port_security_enabled=body.get("port_security_enabled"),
        security_groups=sgs, allowed_address_pairs=body.get("allowed_address_pairs"),
        binding_host_id=body.get("binding:host_id") or "",
        description=body.get("description") or "", extra_dhcp_opts=body.get("extra_dhcp_opts"),
        tags=body.get("tags"))
    return _json("port", port_view(port), 201)


async def get_port(request: web.Request) -> web.Response:
    authorize(request, "network:get_port")
    return _json("port", port_view(_port(request)))


async def update_port(request: web.Request) -> web.Response:
    auth = authorize(request, "network:update_port")
    port = _port(request)
    body = await valid_body(request, schemas.PORT_UPDATE)
    changes = dict(body)
    if "binding:host_id" in body:
        changes["binding_host_id"] = body["binding:host_id"] or ""
    port = await _mgr(request).update_port(port, changes, is_admin=auth.is_admin)
    return _json("port", port_view(port))


async def delete_port(request: web.Request) -> web.Response:
    authorize(request, "network:delete_port")
    port = _port(request)
    await _mgr(request).delete_port(port.id)
    return web.Response(status=204)


# ---- security groups ----------------------------------------------------------------------------

def _sg(request: web.Request, sg_id: str | None = None) -> SecurityGroup:
    auth = auth_of(request)
    sg_id = sg_id or request.match_info["id"]
    sg = _mgr(request).security_groups.get(sg_id)
    if sg is None or not owns(auth, sg.project_id):
        raise NotFound(f"Security group {sg_id} does not exist")
    return sg


async def list_security_groups(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_security_groups")
    mgr = _mgr(request)
    if auth.project_id:
        await mgr.groups.ensure_default_sg(auth.project_id)
    groups = mgr.security_groups.list(lambda g: owns(auth, g.project_id))
    return _json("security_groups", _filtered(request, [sg_view(mgr, g) for g in groups]))


async def create_security_group(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_security_group",
                                                schemas.SECURITY_GROUP_CREATE)
    sg = await _mgr(request).groups.create_security_group(
        project_id, name=body.get("name") or "", description=body.get("description") or "",
        stateful=_bool(body, "stateful", True), tags=body.get("tags"))
    return _json("security_group", sg_view(_mgr(request), sg), 201)


async def get_security_group(request: web.Request) -> web.Response:
    authorize(request, "network:get_security_group")
    return _json("security_group", sg_view(_mgr(request), _sg(request)))


async def update_security_group(request: web.Request) -> web.Response:
    authorize(request, "network:update_security_group")
    sg = _sg(request)
    body = await valid_body(request, schemas.SECURITY_GROUP_UPDATE)
    sg = await _mgr(request).groups.update_security_group(sg, body)
    return _json("security_group", sg_view(_mgr(request), sg))


async def delete_security_group(request: web.Request) -> web.Response:
    auth = authorize(request, "network:delete_security_group")
    sg = _sg(request)
    await _mgr(request).groups.delete_security_group(sg.id, is_admin=auth.is_admin)
    return web.Response(status=204)


async def list_security_group_rules(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_security_group_rules")
    rules = _mgr(request).sg_rules.list(lambda r: owns(auth, r.project_id))
    return _json("security_group_rules", _filtered(request, [rule_view(r) for r in rules]))


async def create_security_group_rule(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_security_group_rule",
                                                schemas.SECURITY_GROUP_RULE_CREATE)
    sg = _sg(request, body.get("security_group_id") or "-")
    if body.get("remote_group_id"):
        _sg(request, body["remote_group_id"])
    rule = await _mgr(request).groups.create_security_group_rule(sg.project_id, body)
    return _json("security_group_rule", rule_view(rule), 201)


async def get_security_group_rule(request: web.Request) -> web.Response:
    auth = authorize(request, "network:get_security_group_rule")
    rule = _mgr(request).sg_rules.get(request.match_info["id"])
    if rule is None or not owns(auth, rule.project_id):
        raise NotFound(f"Security group rule {request.match_info['id']} does not exist")
    return _json("security_group_rule", rule_view(rule))


async def delete_security_group_rule(request: web.Request) -> web.Response:
    auth = authorize(request, "network:delete_security_group_rule")
    rule = _mgr(request).sg_rules.get(request.match_info["id"])
    if rule is None or not owns(auth, rule.project_id):
        raise NotFound(f"Security group rule {request.match_info['id']} does not exist")
    await _mgr(request).groups.delete_security_group_rule(rule.id)
    return web.Response(status=204)


# ---- routers ------------------------------------------------------------------------------------

def _router(request: web.Request) -> Router:
    auth = auth_of(request)
    router = _mgr(request).routers.get(request.match_info["id"])
    if router is None or not owns(auth, router.project_id):
        raise NotFound(f"Router {request.match_info['id']} could not be found")
    return router


def _gateway_info(request: web.Request, info: Any) -> dict | None:
    if info is None or info == {}:
        return None
    if not isinstance(info, dict):
        raise BadRequest("external_gateway_info must be an object")
    if info.get("network_id"):
        _visible_network(request, info["network_id"])
    return info


async def list_routers(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_routers")
    mgr = _mgr(request)
    routers = mgr.routers.list(lambda r: owns(auth, r.project_id))
    return _json("routers", _filtered(request, [router_view(mgr, r) for r in routers]))


async def create_router(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_router", schemas.ROUTER_CREATE)
    router = await _mgr(request).routing.create_router(
        project_id, name=body.get("name") or "", admin_state_up=_bool(body, "admin_state_up", True),
        description=body.get("description") or "",
        external_gateway_info=_gateway_info(request, body.get("external_gateway_info")),
        tags=body.get("tags"), is_admin=auth.is_admin)
    return _json("router", router_view(_mgr(request), router), 201)


async def get_router(request: web.Request) -> web.Response:
    authorize(request, "network:get_router")
    return _json("router", router_view(_mgr(request), _router(request)))


async def update_router(request: web.Request) -> web.Response:
    auth = authorize(request, "network:update_router")
    router = _router(request)
    body = await valid_body(request, schemas.ROUTER_UPDATE)
    changes = dict(body)
    if "external_gateway_info" in body:
        changes["external_gateway_info"] = _gateway_info(request, body["external_gateway_info"])
    router = await _mgr(request).routing.update_router(router, changes, is_admin=auth.is_admin)
    return _json("router", router_view(_mgr(request), router))


async def delete_router(request: web.Request) -> web.Response:
    authorize(request, "network:delete_router")
    router = _router(request)
    await _mgr(request).routing.delete_router(router.id)
    return web.Response(status=204)


def _interface_info(router: Router, port: Port, sn: Subnet) -> dict[str, Any]:
    return {"id": router.id, "tenant_id": router.project_id, "project_id": router.project_id,
            "port_id": port.id, "subnet_id": sn.id, "subnet_ids": [sn.id],
            "network_id": port.network_id, "tags": []}


async def add_router_interface(request: web.Request) -> web.Response:
    auth = authorize(request, "network:add_router_interface")
    router = _router(request)
    body = await valid_body(request, schemas.ROUTER_INTERFACE)
    port, sn = await _mgr(request).routing.add_router_interface(
        router, subnet_id=body.get("subnet_id"), port_id=body.get("port_id"),
        project_id=auth.project_id or "", is_admin=auth.is_admin)
    return web.json_response(_interface_info(router, port, sn))


async def remove_router_interface(request: web.Request) -> web.Response:
    authorize(request, "network:remove_router_interface")
    router = _router(request)
    body = await valid_body(request, schemas.ROUTER_INTERFACE)
    port, sn = await _mgr(request).routing.remove_router_interface(
        router, subnet_id=body.get("subnet_id"), port_id=body.get("port_id"))
    return web.json_response(_interface_info(router, port, sn))


# ---- floating IPs -------------------------------------------------------------------------------

def _fip(request: web.Request) -> FloatingIP:
    auth = auth_of(request)
    fip = _mgr(request).floatingips.get(request.match_info["id"])
    if fip is None or not owns(auth, fip.project_id):
        raise NotFound(f"Floating IP {request.match_info['id']} could not be found")
    return fip


async def list_floatingips(request: web.Request) -> web.Response:
    auth = authorize(request, "network:list_floatingips")
    fips = _mgr(request).floatingips.list(lambda f: owns(auth, f.project_id))
    return _json("floatingips", _filtered(request, [fip_view(f) for f in fips]))


async def create_floatingip(request: web.Request) -> web.Response:
    auth, body, project_id = await _create_body(request, "network:create_floatingip",
                                                schemas.FLOATINGIP_CREATE)
    net = _visible_network(request, body["floating_network_id"])
    fip = await _mgr(request).routing.create_floatingip(
        project_id, net.id, is_admin=auth.is_admin, port_id=body.get("port_id"),
        fixed_ip_address=body.get("fixed_ip_address"),
        floating_ip_address=body.get("floating_ip_address"),
        description=body.get("description") or "", tags=body.get("tags"))
    return _json("floatingip", fip_view(fip), 201)


async def get_floatingip(request: web.Request) -> web.Response:
    authorize(request, "network:get_floatingip")
    return _json("floatingip", fip_view(_fip(request)))


async def update_floatingip(request: web.Request) -> web.Response:
    auth = authorize(request, "network:update_floatingip")
    fip = _fip(request)
    body = await valid_body(request, schemas.FLOATINGIP_UPDATE)
    fip = await _mgr(request).routing.update_floatingip(fip, body, project_id=fip.project_id,
                                                is_admin=auth.is_admin)
    return _json("floatingip", fip_view(fip))


async def delete_floatingip(request: web.Request) -> web.Response:
    authorize(request, "network:delete_floatingip")
    fip = _fip(request)
    await _mgr(request).routing.delete_floatingip(fip.id)
    return web.Response(status=204)


# ---- quotas -------------------------------------------------------------------------------------

def _quota_body(mgr: NetworkManager, project_id: str) -> dict[str, Any]:
    q = mgr.quota_for(project_id)
    return {**{k: q.limit(k) for k in QUOTA_DEFAULTS}, "rbac_policy": 10, "subnetpool": -1}


async def list_quotas(request: web.Request) -> web.Response:
    authorize(request, "network:list_quotas")
    mgr = _mgr(request)
    return _json("quotas", [{"project_id": q.id, "tenant_id": q.id, **_quota_body(mgr, q.id)}
                            for q in mgr.quotas.list()])


async def get_quota(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    authorize(request, "network:get_quota", target_project_id=pid)
    return _json("quota", _quota_body(_mgr(request), pid))


async def get_quota_default(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    authorize(request, "network:get_quota", target_project_id=pid)
    return _json("quota", {**QUOTA_DEFAULTS, "rbac_policy": 10, "subnetpool": -1})


async def get_quota_details(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    authorize(request, "network:get_quota", target_project_id=pid)
    mgr = _mgr(request)
    limits, used = _quota_body(mgr, pid), mgr.usage(pid)
    return _json("quota", {k: {"limit": v, "used": used.get(k, 0),
                               "reserved": mgr.quota_ledger.reserved(pid, k)}
                           for k, v in limits.items()})


async def update_quota(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    authorize(request, "network:update_quota")
    body = await valid_body(request, schemas.QUOTA_UPDATE)
    # `openstack quota set` sends check_limit (and force): with check_limit a limit below what
    # the project already uses is refused, as Neutron's quota driver does.
    check_limit = body.get("check_limit", False)
    body = {k: as_int(v) for k, v in body.items()
            if k not in ("rbac_policy", "subnetpool", "force", "check_limit")}
    if check_limit:
        used = _mgr(request).usage(pid)
        for k, v in body.items():
            if 0 <= v < used.get(k, 0):
                raise BadRequest(f"Quota limit {v} for {k} must be greater than or equal to "
                                 f"already used and reserved {used[k]}.")
    await _mgr(request).set_quota(pid, body)
    return _json("quota", _quota_body(_mgr(request), pid))


async def delete_quota(request: web.Request) -> web.Response:
    pid = request.match_info["project_id"]
    authorize(request, "network:delete_quota")
    await _mgr(request).reset_quota(pid)
    return web.Response(status=204)


# ---- DHCP leases (monostack extension) ------------------------------------------------------------

async def list_leases(request: web.Request) -> web.Response:
    authorize(request, "network:list_dhcp_leases")
    leases = _mgr(request).leases.list()
    return _json("leases", _filtered(request, [lease_view(r) for r in leases]))


async def dhcp_stats(request: web.Request) -> web.Response:
    authorize(request, "network:list_dhcp_leases")
    return _json("dhcp_stats", _mgr(request).dhcp_stats())


# ---- routes -------------------------------------------------------------------------------------

#: Most items one bulk create takes: the whole list is read before anything is made.
MAX_BULK = 500

#: collection → (singular body key, plural body key, undo of one create for a failed bulk)
_BULK: dict[str, tuple[str, str, Callable[[NetworkManager, str], Awaitable[Any]]]] = {
    "networks": ("network", "networks", lambda m, i: m.delete_network(i)),
    "subnets": ("subnet", "subnets", lambda m, i: m.delete_subnet(i)),
    "ports": ("port", "ports", lambda m, i: m.delete_port(i)),
    "security-groups": ("security_group", "security_groups",
                        lambda m, i: m.groups.delete_security_group(i, is_admin=True)),
    "security-group-rules": ("security_group_rule", "security_group_rules",
                             lambda m, i: m.groups.delete_security_group_rule(i)),
    "routers": ("router", "routers", lambda m, i: m.routing.delete_router(i)),
    "floatingips": ("floatingip", "floatingips", lambda m, i: m.routing.delete_floatingip(i)),
}


def _bulk(collection: str, creator: Callable[[web.Request], Awaitable[web.Response]]
          ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Neutron's bulk create: `{"<plural>": [...]}` makes each item through the ordinary create
    handler (same policy, checks and quota), and undoes the ones made if any fails."""
    singular, plural, undo = _BULK[collection]

    async def handler(request: web.Request) -> web.Response:
        body = await json_body(request)
        if not (isinstance(body, dict) and plural in body and singular not in body):
            return await creator(request)
        items = body[plural]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequest(f"Invalid input for field/attribute {plural}: it must be a list "
                             "of objects.")
        if not 1 <= len(items) <= MAX_BULK:
            raise BadRequest(f"Invalid input for field/attribute {plural}: between 1 and "
                             f"{MAX_BULK} items.")
        for item in items:  # every item checked before the first is made
            validate(schemas.CREATE[collection], {singular: item})
        made: list[dict[str, Any]] = []
        try:
            for item in items:
                # one item at a time through the same request (its body is already read)
                request[BODY_OVERRIDE] = {singular: item}
                response = await creator(request)
                made.append(json.loads(response.text or "{}")[singular])
        except BaseException:
            mgr = _mgr(request)
            for created in reversed(made):
                try:
                    await undo(mgr, created["id"])
                except Exception:  # noqa: BLE001 — undo what can be undone, report the cause
                    pass
            raise
        finally:
            request.pop(BODY_OVERRIDE, None)
        return _json(plural, made, 201)
    handler.__name__ = getattr(creator, "__name__", "create")
    return handler


def _crud(collection: str, lister: Callable, creator: Callable, getter: Callable,
          updater: Callable | None, deleter: Callable) -> list[web.RouteDef]:
    base = f"{PREFIX}/{collection}"
    out = [web.get(base, lister), web.post(base, _bulk(collection, creator)),
           web.get(base + "/{id}", _with_fields(getter)), web.delete(base + "/{id}", deleter)]
    if updater is not None:
        out.append(web.put(base + "/{id}", updater))
    return out


def routes() -> list[web.RouteDef]:
    return [
        web.get("/network", versions),
        web.get("/network/", versions),
        web.get(PREFIX, resources),
        web.get(PREFIX + "/", resources),
        web.get(PREFIX + "/extensions", list_extensions),
        web.get(PREFIX + "/extensions/{alias}", get_extension),
        *_crud("networks", list_networks, create_network, get_network, update_network,
               delete_network),
        *_crud("subnets", list_subnets, create_subnet, get_subnet, update_subnet, delete_subnet),
        *_crud("ports", list_ports, create_port, get_port, update_port, delete_port),
        *_crud("security-groups", list_security_groups, create_security_group,
               get_security_group, update_security_group, delete_security_group),
        *_crud("security-group-rules", list_security_group_rules, create_security_group_rule,
               get_security_group_rule, None, delete_security_group_rule),
        *_crud("routers", list_routers, create_router, get_router, update_router, delete_router),
        web.put(PREFIX + "/routers/{id}/add_router_interface", add_router_interface),
        web.put(PREFIX + "/routers/{id}/remove_router_interface", remove_router_interface),
        *_crud("floatingips", list_floatingips, create_floatingip, get_floatingip,
               update_floatingip, delete_floatingip),
        web.get(PREFIX + "/quotas", list_quotas),
        web.get(PREFIX + "/quotas/{project_id}", get_quota),
        web.get(PREFIX + "/quotas/{project_id}/default", get_quota_default),
        web.get(PREFIX + "/quotas/{project_id}/details", get_quota_details),
        web.put(PREFIX + "/quotas/{project_id}", update_quota),
        web.delete(PREFIX + "/quotas/{project_id}", delete_quota),
        web.get(PREFIX + "/monostack-dhcp-leases", list_leases),
        web.get(PREFIX + "/monostack-dhcp-stats", dhcp_stats),
        *tag_routes(PREFIX, _tagged()),
    ]


def _owned_network(request: web.Request) -> Network:
    net = _visible_network(request, request.match_info["id"])
    _check_owner(auth_of(request), net.project_id, True, f"Network {net.id}")
    return net


def _owned_subnet(request: web.Request) -> Subnet:
    sn = _visible_subnet(request, request.match_info["id"])
    _check_owner(auth_of(request), sn.project_id, True, f"Subnet {sn.id}")
    return sn


def _actions(resource: str) -> tuple[str, str]:
    return f"network:get_{resource}", f"network:update_{resource}"


def _tagged() -> dict[str, Tagged]:
    """Who may tag what: the rules of each collection's update."""
    def admin(request: web.Request) -> bool:
        return auth_of(request).is_admin
    return {
        "networks": Tagged(_owned_network, lambda rq, r, t: _mgr(rq).update_network(
            r, {"tags": t}), *_actions("network")),
        "subnets": Tagged(_owned_subnet, lambda rq, r, t: _mgr(rq).update_subnet(
            r, {"tags": t}), *_actions("subnet")),
        "ports": Tagged(_port, lambda rq, r, t: _mgr(rq).update_port(
            r, {"tags": t}, is_admin=admin(rq)), *_actions("port")),
        "security-groups": Tagged(_sg, lambda rq, r, t: _mgr(rq).groups.update_security_group(
            r, {"tags": t}), *_actions("security_group")),
        "routers": Tagged(_router, lambda rq, r, t: _mgr(rq).routing.update_router(
            r, {"tags": t}, is_admin=admin(rq)), *_actions("router")),
        "floatingips": Tagged(_fip, lambda rq, r, t: _mgr(rq).routing.update_floatingip(
            r, {"tags": t}, project_id=r.project_id, is_admin=admin(rq)),
            *_actions("floatingip")),
    }
