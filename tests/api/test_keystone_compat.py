"""Keystone behaviour upstream clients and conformance setups rely on: scoping to the default
project, unscoped tokens without a catalog, the read-only catalog resources."""
from __future__ import annotations

import aiohttp
import pytest

from appliance.client import MonostackClient
from appliance.errors import Forbidden, NotFound


async def _user(admin, name, project=None, role="member", default=True):
    pid = None
    if project:
        pid = (await admin.post("/v3/projects", {"project": {"name": project}}))["project"]["id"]
    body = {"name": name, "password": name + "-pw"}
    if pid and default:
        body["default_project_id"] = pid
    uid = (await admin.post("/v3/users", {"user": body}))["user"]["id"]
    if pid and role:
        rid = (await admin.get(f"/v3/roles?name={role}"))["roles"][0]["id"]
        await admin.put(f"/v3/projects/{pid}/users/{uid}/roles/{rid}")
    return uid, pid


async def _login(daemon, body):
    async with aiohttp.ClientSession() as http:
        async with http.post(daemon.url + "/v3/auth/tokens", json={"auth": body}) as r:
            assert r.status == 201, await r.text()
            return r.headers["X-Subject-Token"], (await r.json())["token"]


def _password(name):
    return {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": name + "-pw"}}}}


async def test_no_scope_means_the_default_project(core_daemon, admin):
    uid, pid = await _user(admin, "dora", "dora-proj")
    _, token = await _login(core_daemon, _password("dora"))
    assert token["project"]["id"] == pid and [r["name"] for r in token["roles"]] == ["member"]
    assert any(c["type"] == "identity" for c in token["catalog"])
    # asked for explicitly, an unscoped token: no roles, no catalog
    secret, token = await _login(core_daemon, {**_password("dora"), "scope": "unscoped"})
    assert "project" not in token and not token.get("roles") and "catalog" not in token
    async with aiohttp.ClientSession() as http:
        async with http.get(core_daemon.url + "/v3/auth/catalog",
                            headers={"X-Auth-Token": secret}) as r:
            assert r.status == 403
        async with http.get(core_daemon.url + "/v3/auth/projects",
                            headers={"X-Auth-Token": secret}) as r:
            assert [p["id"] for p in (await r.json())["projects"]] == [pid]


async def test_default_project_without_a_role_gives_an_unscoped_token(core_daemon, admin):
    await _user(admin, "ned", "ned-proj", role=None)
    _, token = await _login(core_daemon, _password("ned"))
    assert "project" not in token and "catalog" not in token
    # the client library follows: a session without a project
    client = MonostackClient(socket_path=core_daemon.config.api.socket)
    try:
        session = await client.login("ned", "ned-pw")
        assert session.project_id is None and session.catalog == []
    finally:
        await client.close()


async def test_catalog_resources_are_listed_read_only(core_daemon, admin):
    services = (await admin.get("/v3/services"))["services"]
    assert "identity" in {s["type"] for s in services}
    ident = next(s for s in services if s["type"] == "identity")
    assert (await admin.get(f"/v3/services/{ident['id']}"))["service"]["name"] == "keystone"
    endpoints = (await admin.get(f"/v3/endpoints?service_id={ident['id']}"))["endpoints"]
    assert {e["interface"] for e in endpoints} == {"public", "internal", "admin"}
    # the ids are the ones every token's catalog carries
    in_token = {e["id"] for c in admin.session.catalog for e in c["endpoints"]}
    assert {e["id"] for e in endpoints} <= in_token
    shown = (await admin.get(f"/v3/endpoints/{endpoints[0]['id']}"))["endpoint"]
    assert shown["service_id"] == ident["id"] and shown["region_id"] == "RegionOne"
    assert [r["id"] for r in (await admin.get("/v3/regions"))["regions"]] == ["RegionOne"]
    with pytest.raises(NotFound):
        await admin.get("/v3/regions/Elsewhere")
    with pytest.raises(Forbidden, match="appliance's own"):
        await admin.post("/v3/services", {"service": {"type": "x", "name": "x"}})
    _, pid = await _user(admin, "mel", "mel-proj")
    member = MonostackClient(socket_path=core_daemon.config.api.socket)
    try:
        await member.login("mel", "mel-pw", "mel-proj")
        with pytest.raises(Forbidden):
            await member.get("/v3/endpoints")
        assert (await member.get("/v3/regions"))["regions"][0]["id"] == "RegionOne"
    finally:
        await member.close()
