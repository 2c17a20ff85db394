"""Real resources to aim requests at, one factory per path parameter of the route table.

A route's path parameters are named by the collection before them ("servers/{id}",
"images/{image_id}", "{account}/{container}"), because the same name means different things
in different services ({id} is a server, a flavor or a port). `Resources.fill(path)` asks the
registry for each parameter; a parameter nobody registered is reported as missing, so a test
built on it fails until the new endpoint gets a factory here.

Factories create their resource once, in the admin project, through the public API, and keep
its id. Sub-resource parameters (a tag, a metadata key) name something inside their parent
that exists where that is cheap, otherwise a plausible value: authorization is decided on the
parent resource.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.client import MonostackClient
from tests.reliability.support import C, N, NOVA, upload_image

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

Factory = Callable[["Resources"], Awaitable[str]]
FACTORIES: dict[str, Factory] = {}

#: GET on these is allowed to every authenticated user: they are global, not project-owned.
GLOBAL_READS = {"roles/{role_id}", "domains/{domain_id}", "types/{type_id}",
                "extensions/{alias}", "regions/{region_id}", "regions/{id}",
                # the catalog: every token carries its service and endpoint ids
                "services/{service_id}", "services/{id}", "endpoints/{endpoint_id}",
                "endpoints/{id}"}
#: Routes OpenStack lets anyone read whatever the path names (with why).
PUBLIC_READ_ROUTES = {
    "/compute/v2.1/os-quota-sets/{project_id}/defaults": "Nova: default quotas are global",
}

#: Bodies that pass validation, so an authorization test sees the real decision and not a 400
#: about the body. Keyed by (method, path suffix); the longest matching suffix wins.
VALID_BODIES: dict[tuple[str, str], object] = {
    ("PATCH", "/images/{image_id}"): [{"op": "replace", "path": "/name", "value": "x"}],
    ("POST", "/images/{image_id}/import"): {"method": {"name": "glance-direct"}},
    ("POST", "/images/{image_id}/members"): {"member": "00000000000040008000000000000abc"},
    ("PUT", "/members/{member_id}"): {"status": "accepted"},
    ("PUT", "/volumes/{volume_id}"): {"volume": {"name": "x"}},
    ("POST", "/volumes/{volume_id}/action"): {"os-extend": {"new_size": 2}},
    ("POST", "/volumes/{volume_id}/metadata"): {"metadata": {"a": "b"}},
    ("PUT", "/volumes/{volume_id}/metadata"): {"metadata": {"a": "b"}},
    ("PUT", "/snapshots/{snapshot_id}"): {"snapshot": {"name": "x"}},
    ("POST", "/volumes"): {"volume": {"size": 1}},
    ("POST", "/snapshots"): {"snapshot": {"volume_id": "00000000-0000-4000-8000-000000000000"}},
    ("PUT", "/servers/{id}"): {"server": {"name": "x"}},
    ("POST", "/servers/{id}/action"): {"os-stop": None},
    ("POST", "/servers/{id}/metadata"): {"metadata": {"a": "b"}},
    ("PUT", "/servers/{id}/metadata"): {"metadata": {"a": "b"}},
    ("POST", "/servers/{id}/remote-consoles"): {"remote_console": {"protocol": "serial",
                                                                   "type": "serial"}},
    ("POST", "/servers/{id}/os-volume_attachments"): {"volumeAttachment": {
        "volumeId": "00000000-0000-4000-8000-000000000000"}},
    ("POST", "/servers/{id}/os-interface"): {"interfaceAttachment": {}},
    ("PUT", "/flavors/{id}"): {"flavor": {"description": "x"}},
    ("POST", "/flavors/{id}/os-extra_specs"): {"extra_specs": {"a": "b"}},
    ("PUT", "/os-extra_specs/{key}"): {"k1": "v2"},
    ("POST", "/flavors/{id}/action"): {"addTenantAccess": {"tenant": "x"}},
    ("PUT", "/os-quota-sets/{project_id}"): {"quota_set": {"instances": 50}},
    ("PUT", "/os-quota-sets/{target_project_id}"): {"quota_set": {"volumes": 50}},
    ("PUT", "/quotas/{project_id}"): {"quota": {"network": 50}},
    ("PATCH", "/users/{user_id}"): {"user": {"enabled": False}},
    ("PATCH", "/projects/{project_id}"): {"project": {"enabled": False}},
    ("PUT", "/networks/{id}"): {"network": {"name": "x"}},
    ("PUT", "/subnets/{id}"): {"subnet": {"name": "x"}},
    ("PUT", "/ports/{id}"): {"port": {"name": "x"}},
    ("PUT", "/security-groups/{id}"): {"security_group": {"name": "x"}},
    ("PUT", "/routers/{id}"): {"router": {"name": "x"}},
    ("PUT", "/floatingips/{id}"): {"floatingip": {"port_id": None}},
    ("PUT", "/routers/{id}/add_router_interface"): {"subnet_id": "x"},
    ("PUT", "/routers/{id}/remove_router_interface"): {"subnet_id": "x"},
}


def valid_body(method: str, path: str) -> object:
    best = None
    for (m, suffix), body in VALID_BODIES.items():
        if m == method and path.endswith(suffix) and (best is None or len(suffix) > best[0]):
            best = (len(suffix), body)
    return best[1] if best else {}


def body_headers(method: str, path: str) -> dict[str, str]:
    if method == "PATCH" and path.startswith("/image/"):
        return {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    if method == "COPY":
        return {"Destination": "authz-c/copied"}
    return {}


def factory(*keys: str) -> Callable[[Factory], Factory]:
    def register(fn: Factory) -> Factory:
        for key in keys:
            FACTORIES[key] = fn
        return fn
    return register


def param_keys(path: str) -> list[str]:
    """["servers/{id}", "tags/{tag}"] for /compute/v2.1/servers/{id}/tags/{tag}."""
    keys = []
    parts = path.strip("/").split("/")
    for i, part in enumerate(parts):
        m = _PARAM.fullmatch(part)
        if m:
            before = parts[i - 1] if i else ""
            before = _PARAM.sub(lambda x: "{" + x.group(1) + "}", before)
            keys.append(f"{before}/{{{m.group(1)}}}")
    return keys


class Resources:
    """Lazily created resources of the admin project, by registry key."""

    def __init__(self, admin: MonostackClient, admin_project_id: str, admin_user_id: str) -> None:
        self.admin = admin
        self.project_id = admin_project_id
        self.user_id = admin_user_id
        self.values: dict[str, str] = {}
        self.created: dict[str, Any] = {}

    async def get(self, key: str) -> str:
        if key not in self.values:
            self.values[key] = await FACTORIES[key](self)
        return self.values[key]

    @staticmethod
    def missing(path: str) -> list[str]:
        return [k for k in param_keys(path) if k not in FACTORIES]

    async def fill(self, path: str, overrides: dict[str, str] | None = None) -> str:
        out = path
        for key in param_keys(path):
            value = (overrides or {}).get(key) or await self.get(key)
            name = key.split("/", 1)[1]
            out = re.sub(r"\{" + re.escape(name[1:-1]) + r"(?::[^}]*)?\}", value, out, count=1)
        return out


# -- identity ------------------------------------------------------------------------------------

@factory("projects/{project_id}", "v3/{project_id}", "quotas/{project_id}",
         "os-quota-sets/{project_id}", "os-quota-sets/{target_project_id}")
async def _admin_project(r: Resources) -> str:
    return r.project_id


@factory("users/{user_id}")
async def _admin_user(r: Resources) -> str:
    return r.user_id


@factory("roles/{role_id}")
async def _admin_role(r: Resources) -> str:
    return (await r.admin.get("/v3/roles?name=admin"))["roles"][0]["id"]


@factory("domains/{domain_id}")
async def _domain(r: Resources) -> str:
    return "default"


@factory("services/{service_id}", "services/{id}")
async def _service(r: Resources) -> str:
    return (await r.admin.get("/v3/services?type=identity"))["services"][0]["id"]


@factory("endpoints/{endpoint_id}", "endpoints/{id}")
async def _endpoint(r: Resources) -> str:
    return (await r.admin.get("/v3/endpoints?interface=public"))["endpoints"][0]["id"]


@factory("regions/{region_id}", "regions/{id}")
async def _region(r: Resources) -> str:
    return "RegionOne"


@factory("application_credentials/{cred_id}")
async def _app_credential(r: Resources) -> str:
    return (await r.admin.post(f"/v3/users/{r.user_id}/application_credentials", {
        "application_credential": {"name": "authz-" + uuid.uuid4().hex[:6]}}))[
        "application_credential"]["id"]


# -- images --------------------------------------------------------------------------------------

@factory("images/{image_id}")
async def _image(r: Resources) -> str:
    img = await upload_image(r.admin, "authz-private", tags=["t1"])
    r.created["image"] = img
    return img["id"]


@factory("tags/{tag}")
async def _tag(r: Resources) -> str:
    return "t1"


@factory("members/{member_id}")
async def _member(r: Resources) -> str:
    third = (await r.admin.post("/v3/projects", {"project": {
        "name": "authz-member-" + uuid.uuid4().hex[:6]}}))["project"]["id"]
    image_id = await r.get("images/{image_id}")
    await r.admin.patch(f"/image/v2/images/{image_id}",
                        [{"op": "replace", "path": "/visibility", "value": "shared"}],
                        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    await r.admin.post(f"/image/v2/images/{image_id}/members", {"member": third})
    return third


# -- volumes -------------------------------------------------------------------------------------

@factory("volumes/{volume_id}")
async def _volume(r: Resources) -> str:
    vol = (await r.admin.post(f"/volume/v3/{r.project_id}/volumes", {"volume": {
        "name": "authz-vol", "size": 1, "metadata": {"k1": "v1"}}}))["volume"]
    await _wait(r.admin, f"/volume/v3/{r.project_id}/volumes/{vol['id']}", "volume",
                "available", "error")
    return vol["id"]


@factory("snapshots/{snapshot_id}")
async def _snapshot(r: Resources) -> str:
    vid = await r.get("volumes/{volume_id}")
    snap = (await r.admin.post(f"/volume/v3/{r.project_id}/snapshots", {"snapshot": {
        "volume_id": vid, "name": "authz-snap"}}))["snapshot"]
    await _wait(r.admin, f"/volume/v3/{r.project_id}/snapshots/{snap['id']}", "snapshot",
                "available", "error")
    return snap["id"]


@factory("metadata/{key}", "os-extra_specs/{key}")
async def _meta_key(r: Resources) -> str:
    return "k1"


@factory("types/{type_id}")
async def _volume_type(r: Resources) -> str:
    return (await r.admin.get(f"/volume/v3/{r.project_id}/types"))["volume_types"][0]["id"]


# -- compute -------------------------------------------------------------------------------------

@factory("servers/{id}")
async def _server(r: Resources) -> str:
    image_id = await r.get("images/{image_id}")
    srv = (await r.admin.post(f"{C}/servers", {"server": {
        "name": "authz-server", "imageRef": image_id, "flavorRef": "1",
        "metadata": {"k1": "v1"}, "tags": ["t1"]}}, headers=NOVA))["server"]
    await _wait(r.admin, f"{C}/servers/{srv['id']}", "server", "ACTIVE", "ERROR")
    return srv["id"]


@factory("flavors/{id}")
async def _private_flavor(r: Resources) -> str:
    fid = "authz-private-" + uuid.uuid4().hex[:6]
    await r.admin.post(f"{C}/flavors", {"flavor": {
        "name": fid, "id": fid, "vcpus": 1, "ram": 64, "disk": 1,
        "os-flavor-access:is_public": False}})
    await r.admin.post(f"{C}/flavors/{fid}/action",
                       {"addTenantAccess": {"tenant": r.project_id}})
    await r.admin.post(f"{C}/flavors/{fid}/os-extra_specs", {"extra_specs": {"k1": "v1"}})
    return fid


@factory("os-keypairs/{name}")
async def _keypair(r: Resources) -> str:
    name = "authz-key"
    await r.admin.post(f"{C}/os-keypairs", {"keypair": {"name": name}})
    return name


@factory("os-server-groups/{id}")
async def _server_group(r: Resources) -> str:
    return (await r.admin.post(f"{C}/os-server-groups", {"server_group": {
        "name": "authz-group", "policies": ["anti-affinity"]}}))["server_group"]["id"]


@factory("os-hypervisors/{id}")
async def _hypervisor(r: Resources) -> str:
    return str((await r.admin.get(f"{C}/os-hypervisors"))["hypervisors"][0]["id"])


@factory("os-volume_attachments/{volume_id}")
async def _attached_volume(r: Resources) -> str:
    return await r.get("volumes/{volume_id}")


@factory("os-instance-actions/{request_id}")
async def _instance_action(r: Resources) -> str:
    server = await r.get("servers/{id}")
    return (await r.admin.get(f"{C}/servers/{server}/os-instance-actions"))[
        "instanceActions"][-1]["request_id"]


@factory("ips/{network}")
async def _network_label(r: Resources) -> str:
    return "private"


@factory("os-interface/{port_id}")
async def _interface(r: Resources) -> str:
    if "ports/{id}" in FACTORIES and _has_network(r):
        return await r.get("ports/{id}")
    return "00000000-0000-4000-8000-000000000001"


def _has_network(r: Resources) -> bool:
    return any(e.get("type") == "network" for e in (r.admin.session.catalog or []))


# -- network -------------------------------------------------------------------------------------

@factory("networks/{id}")
async def _network(r: Resources) -> str:
    return (await r.admin.post(f"{N}/networks", {"network": {
        "name": "authz-net"}}))["network"]["id"]


@factory("subnets/{id}")
async def _subnet(r: Resources) -> str:
    net = await r.get("networks/{id}")
    return (await r.admin.post(f"{N}/subnets", {"subnet": {
        "name": "authz-subnet", "network_id": net, "ip_version": 4,
        "cidr": "10.251.7.0/24"}}))["subnet"]["id"]


@factory("ports/{id}")
async def _port(r: Resources) -> str:
    await r.get("subnets/{id}")
    net = await r.get("networks/{id}")
    return (await r.admin.post(f"{N}/ports", {"port": {
        "name": "authz-port", "network_id": net}}))["port"]["id"]


@factory("security-groups/{id}")
async def _security_group(r: Resources) -> str:
    return (await r.admin.post(f"{N}/security-groups", {"security_group": {
        "name": "authz-sg"}}))["security_group"]["id"]


@factory("security-group-rules/{id}")
async def _security_group_rule(r: Resources) -> str:
    sg = await r.get("security-groups/{id}")
    return (await r.admin.post(f"{N}/security-group-rules", {"security_group_rule": {
        "security_group_id": sg, "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}}))[
        "security_group_rule"]["id"]


@factory("routers/{id}")
async def _router(r: Resources) -> str:
    return (await r.admin.post(f"{N}/routers", {"router": {
        "name": "authz-router"}}))["router"]["id"]


@factory("floatingips/{id}")
async def _floating_ip(r: Resources) -> str:
    ext = (await r.admin.get(f"{N}/networks?router:external=true"))["networks"]
    if not ext:
        ext = [(await r.admin.post(f"{N}/networks", {"network": {
            "name": "authz-ext", "router:external": True}}))["network"]]
    return (await r.admin.post(f"{N}/floatingips", {"floatingip": {
        "floating_network_id": ext[0]["id"]}}))["floatingip"]["id"]


@factory("extensions/{alias}")
async def _extension(r: Resources) -> str:
    return (await r.admin.get(f"{N}/extensions"))["extensions"][0]["alias"]


# -- objects -------------------------------------------------------------------------------------

@factory("v1/{account}")
async def _account(r: Resources) -> str:
    return f"AUTH_{r.project_id}"


@factory("{account}/{container}")
async def _container(r: Resources) -> str:
    await r.admin.request("PUT", f"/swift/v1/AUTH_{r.project_id}/authz-c")
    return "authz-c"


@factory("{container}/{object}")
async def _object(r: Resources) -> str:
    await r.get("{account}/{container}")
    await r.admin.upload("PUT", f"/swift/v1/AUTH_{r.project_id}/authz-c/authz-o", b"secret")
    return "authz-o"


async def _wait(client: MonostackClient, path: str, key: str, *final: str,
                field: str = "status", timeout: float = 30.0) -> dict:
    from tests.daemon import wait_for

    async def check():
        body = (await client.get(path, headers=NOVA))[key]
        return body if body[field] in final else None
    return await wait_for(check, timeout=timeout, interval=0.05)
