"""Authorization matrix generated from the route table, so a new endpoint cannot be forgotten.

For every route of a daemon running every installed component:
  * no token, a garbage token, or forged identity headers → 401 (unless the route is public);
  * a `reader` of a project → refused (403/404) on every write, whatever the path;
  * a `member` of another project → never 2xx on another project's resources (see
    test_cross_project_*), using ids the admin project really owns.
"""
from __future__ import annotations

import re

import aiohttp
import pytest
import pytest_asyncio

from appliance.api.util import is_public
from appliance.client import MonostackClient
from tests.daemon import InProcessDaemon, write_config
from tests.reliability.resources import (
    GLOBAL_READS, PUBLIC_READ_ROUTES, Resources, body_headers, param_keys, valid_body,
)
from tests.reliability.support import new_project_user, routes_of

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Routes every authenticated user may write to for themselves.
SELF_SERVICE = {
    ("POST", "/identity/v3/auth/tokens"), ("DELETE", "/identity/v3/auth/tokens"),
    ("POST", "/v3/auth/tokens"), ("DELETE", "/v3/auth/tokens"),
}
FAKE_ID = "00000000-0000-4000-8000-000000000000"


def _fill(path: str, project_id: str) -> str:
    path = path.replace("{project_id}", project_id)
    path = re.sub(r"\{account\}", f"AUTH_{project_id}", path)
    return re.sub(r"\{[^}]+\}", FAKE_ID, path)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def full_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("authz")
    _, config = write_config(base)
    async with InProcessDaemon(config) as daemon:
        admin = await daemon.admin_client()
        project = (await admin.post("/v3/projects", {"project": {"name": "readers"}}))["project"]
        user = (await admin.post("/v3/users", {"user": {"name": "rita", "password": "rita-pw"}}))["user"]
        role = (await admin.get("/v3/roles?name=reader"))["roles"][0]
        await admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
        reader = MonostackClient(socket_path=config.api.socket)
        await reader.login("rita", "rita-pw", "readers")
        yield daemon, admin, reader
        await reader.close()
        await admin.close()


def _routes(daemon):
    return routes_of(daemon.appliance.app)


@pytest.mark.asyncio(loop_scope="module")
async def test_every_private_route_refuses_missing_forged_or_garbage_tokens(full_daemon):
    daemon, admin, _ = full_daemon
    checked = 0
    async with aiohttp.ClientSession() as http:
        for method, path, handler in _routes(daemon):
            if is_public(handler) or path.endswith("/console"):
                continue
            url = daemon.url + _fill(path, admin.session.project_id)
            for headers in ({}, {"X-Auth-Token": "garbage"},
                            {"X-Roles": "admin", "X-User-Id": "x", "X-Project-Id": "y",
                             "X-Forwarded-For": "127.0.0.1"}):
                async with http.request(method, url, headers=headers, json={}) as r:
                    assert r.status == 401, f"{method} {path} with {headers} → {r.status}"
            checked += 1
    assert checked >= 20


@pytest.mark.asyncio(loop_scope="module")
async def test_reader_is_refused_every_write(full_daemon):
    daemon, _, reader = full_daemon
    pid = reader.session.project_id
    refused = 0
    async with aiohttp.ClientSession() as http:
        for method, path, handler in _routes(daemon):
            if method not in WRITE_METHODS or is_public(handler) or (method, path) in SELF_SERVICE:
                continue
            url = daemon.url + _fill(path, pid)
            async with http.request(method, url, json={}, headers={"X-Auth-Token": reader.token}) as r:
                assert r.status in (400, 403, 404, 405), f"reader {method} {path} → {r.status}"
                assert r.status != 400 or path.endswith("/action"), \
                    f"reader {method} {path} → 400: policy must be checked before the body"
            refused += 1
    assert refused >= 10


# -- cross-project -------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cross(full_daemon):
    """A member of another project, and the admin project's resources it will aim at."""
    daemon, admin, _ = full_daemon
    attacker, _, project = await new_project_user(admin, daemon.config.api.socket, "member",
                                                  prefix="mallory")
    resources = Resources(admin, admin.session.project_id, admin.session.user_id)
    yield daemon, attacker, project, resources
    await attacker.close()


def _resource_routes(daemon):
    for method, path, handler in _routes(daemon):
        if is_public(handler) or not param_keys(path):
            continue
        yield method, path


@pytest.mark.asyncio(loop_scope="module")
async def test_every_path_parameter_has_a_resource_factory(cross):
    """A new endpoint whose path names a resource nobody can create here fails this test:
    register a factory in tests/reliability/resources.py (and so the cross-project checks
    below cover it)."""
    daemon, *_ = cross
    missing = {f"{m} {p}": Resources.missing(p) for m, p in _resource_routes(daemon)
               if Resources.missing(p)}
    assert not missing, f"path parameters without a factory: {missing}"


@pytest.mark.asyncio(loop_scope="module")
async def test_member_of_another_project_is_refused_every_action_on_its_resources(cross):
    daemon, attacker, project, resources = cross
    failures: list[str] = []
    checked = 0
    async with aiohttp.ClientSession() as http:
        for method, path in sorted(_resource_routes(daemon), key=lambda r: r[0] == "DELETE"):
            keys = param_keys(path)
            if Resources.missing(path):
                continue  # reported by test_every_path_parameter_has_a_resource_factory
            if method == "GET" and (all(k in GLOBAL_READS for k in keys)
                                    or path in PUBLIC_READ_ROUTES):
                continue  # roles, domains, volume types: readable by everyone, as in OpenStack
            variants: list[dict[str, str]] = [{}]
            if "v3/{project_id}" in keys and len(keys) > 1 and not (
                    method == "GET" and all(k in GLOBAL_READS for k in keys[1:])):
                # Cinder: the attacker's own project in the URL, the victim's resource id
                variants.append({"v3/{project_id}": project["id"]})
            for overrides in variants:
                url = daemon.url + await resources.fill(path, overrides)
                headers = {"X-Auth-Token": attacker.token, **body_headers(method, path)}
                async with http.request(method, url, json=valid_body(method, path),
                                        headers=headers) as r:
                    if r.status not in (403, 404):
                        failures.append(f"{method} {path} ({overrides or 'admin project'}) → "
                                        f"{r.status}: {(await r.text())[:200]}")
                checked += 1
    assert not failures, "another project's member was not refused:\n" + "\n".join(failures)
    assert checked >= 20


@pytest.mark.asyncio(loop_scope="module")
async def test_listings_never_show_another_projects_resources(cross):
    daemon, attacker, project, resources = cross
    for _, path in _resource_routes(daemon):  # make sure every resource exists
        if not Resources.missing(path):
            await resources.fill(path)
    private = {k: v for k, v in resources.values.items() if len(v) >= 8
               and k not in GLOBAL_READS and not k.startswith(("v1/", "os-hypervisors/"))
               and v not in (resources.project_id, resources.user_id)}
    leaks: list[str] = []
    async with aiohttp.ClientSession() as http:
        for method, path, handler in _routes(daemon):
            if method != "GET" or is_public(handler):
                continue
            keys = param_keys(path)
            own = {"v3/{project_id}": project["id"], "v1/{account}": f"AUTH_{project['id']}",
                   "quotas/{project_id}": project["id"],
                   "os-quota-sets/{project_id}": project["id"],
                   "projects/{project_id}": project["id"], "users/{user_id}": attacker.session.user_id}
            if any(k not in own for k in keys):
                continue
            url = daemon.url + await resources.fill(path, own)
            async with http.get(url, headers={"X-Auth-Token": attacker.token}) as r:
                text = await r.text()
            for key, value in private.items():
                if value in text:
                    leaks.append(f"GET {path} shows {key}={value}")
    assert not leaks, "\n".join(leaks)


@pytest.mark.asyncio(loop_scope="module")
async def test_bodies_naming_another_projects_resources_are_refused(cross):
    """Ids in a request body (boot from that image, snapshot that volume, port on that
    network) are checked like ids in the path: never a 2xx, never a 500."""
    daemon, attacker, project, resources = cross
    pid = project["id"]
    installed_types = {e["type"] for e in attacker.session.catalog}
    cases: list[tuple[str, str, dict]] = []
    if "volumev3" in installed_types or "block-storage" in installed_types or \
            any(e["type"].startswith("volume") for e in attacker.session.catalog):
        vol = await resources.get("volumes/{volume_id}")
        snap = await resources.get("snapshots/{snapshot_id}")
        cases += [
            ("POST", f"/volume/v3/{pid}/snapshots", {"snapshot": {"volume_id": vol}}),
            ("POST", f"/volume/v3/{pid}/volumes", {"volume": {"size": 1, "snapshot_id": snap}}),
            ("POST", f"/volume/v3/{pid}/volumes", {"volume": {"size": 1, "source_volid": vol}}),
        ]
    if "image" in installed_types:
        img = await resources.get("images/{image_id}")
        if any(e["type"].startswith("volume") for e in attacker.session.catalog):
            cases.append(("POST", f"/volume/v3/{pid}/volumes",
                          {"volume": {"size": 1, "imageRef": img}}))
        if "compute" in installed_types:
            cases.append(("POST", "/compute/v2.1/servers", {"server": {
                "name": "x", "imageRef": img, "flavorRef": "1"}}))
    if "compute" in installed_types and "volume_id" in str(resources.values) or \
            "volumes/{volume_id}" in resources.values:
        cases.append(("POST", "/compute/v2.1/servers", {"server": {
            "name": "x", "flavorRef": "1", "block_device_mapping_v2": [{
                "uuid": resources.values["volumes/{volume_id}"], "source_type": "volume",
                "destination_type": "volume", "boot_index": 0}]}}))
    if "network" in installed_types:
        net = await resources.get("networks/{id}")
        subnet = await resources.get("subnets/{id}")
        port = await resources.get("ports/{id}")
        sg = await resources.get("security-groups/{id}")
        cases += [
            ("POST", "/network/v2.0/ports", {"port": {"network_id": net}}),
            ("POST", "/network/v2.0/subnets", {"subnet": {"network_id": net, "ip_version": 4,
                                                          "cidr": "10.250.1.0/24"}}),
            ("POST", "/network/v2.0/security-group-rules", {"security_group_rule": {
                "security_group_id": sg, "direction": "ingress"}}),
            ("POST", "/network/v2.0/ports", {"port": {"network_id": net, "project_id": pid,
                                                      "fixed_ips": [{"subnet_id": subnet}]}}),
        ]
        if "compute" in installed_types:
            cases += [
                ("POST", "/compute/v2.1/servers", {"server": {
                    "name": "x", "imageRef": await _own_image(attacker), "flavorRef": "1",
                    "networks": [{"uuid": net}]}}),
                ("POST", "/compute/v2.1/servers", {"server": {
                    "name": "x", "imageRef": await _own_image(attacker), "flavorRef": "1",
                    "networks": [{"port": port}]}}),
            ]
        router = (await attacker.post("/network/v2.0/routers", {"router": {"name": "own"}}))["router"]
        cases.append(("PUT", f"/network/v2.0/routers/{router['id']}/add_router_interface",
                      {"subnet_id": subnet}))
        cases.append(("PUT", f"/network/v2.0/routers/{router['id']}/add_router_interface",
                      {"port_id": port}))
    failures = []
    async with aiohttp.ClientSession() as http:
        for method, path, body in cases:
            async with http.request(method, daemon.url + path, json=body,
                                    headers={"X-Auth-Token": attacker.token}) as r:
                if r.status < 400 or r.status >= 500:
                    failures.append(f"{method} {path} {body} → {r.status} {(await r.text())[:200]}")
    assert not failures, "\n".join(failures)
    assert cases


async def _own_image(client: MonostackClient) -> str:
    from tests.reliability.support import upload_image
    if not hasattr(client, "_own_image"):
        client._own_image = (await upload_image(client, "own"))["id"]  # type: ignore[attr-defined]
    return client._own_image  # type: ignore[attr-defined]
