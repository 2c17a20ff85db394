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
    app = daemon.appliance.app
    seen = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*") or (route.method, path) in seen:
            continue
        seen.add((route.method, path))
        yield route.method, path, route.handler


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
