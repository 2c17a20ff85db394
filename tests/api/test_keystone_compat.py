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


async def _token_of(daemon, auth_body):
    async with aiohttp.ClientSession() as http:
        async with http.post(daemon.url + "/v3/auth/tokens", json={"auth": auth_body}) as r:
            return r.status, r.headers.get("X-Subject-Token"), await r.json()


async def _get(daemon, path, token):
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + path, headers={"X-Auth-Token": token}) as r:
            return r.status, await r.json()


def _cred_auth(cred_id, secret):
    return {"identity": {"methods": ["application_credential"],
                         "application_credential": {"id": cred_id, "secret": secret}}}


async def test_application_credentials(core_daemon, admin):
    uid, pid = await _user(admin, "autom", "autom-proj", role="member")
    reader = (await admin.get("/v3/roles?name=reader"))["roles"][0]["id"]
    await admin.put(f"/v3/projects/{pid}/users/{uid}/roles/{reader}")
    user = MonostackClient(socket_path=core_daemon.config.api.socket)
    try:
        await user.login("autom", "autom-pw", "autom-proj")
        base = f"/v3/users/{uid}/application_credentials"
        made = (await user.post(base, {"application_credential": {
            "name": "ci", "roles": [{"name": "reader"}]}}))["application_credential"]
        assert made["secret"] and made["project_id"] == pid and not made["unrestricted"]
        assert [r["name"] for r in made["roles"]] == ["reader"]
        listed = (await user.get(base))["application_credentials"]
        assert [c["name"] for c in listed] == ["ci"] and "secret" not in listed[0]
        # it logs in: scoped to its project with only its roles
        status, secret, body = await _token_of(core_daemon, _cred_auth(made["id"], made["secret"]))
        assert status == 201, body
        token = body["token"]
        assert token["project"]["id"] == pid and [r["name"] for r in token["roles"]] == ["reader"]
        assert token["methods"] == ["application_credential"]
        assert token["application_credential"]["restricted"] is True
        # by name and user, too; a wrong secret is the same 401 as an unknown id
        status, _, _ = await _token_of(core_daemon, {"identity": {
            "methods": ["application_credential"], "application_credential": {
                "name": "ci", "user": {"id": uid}, "secret": made["secret"]}}})
        assert status == 201
        for cid, sec in ((made["id"], "wrong"), ("nope", made["secret"])):
            status, _, body = await _token_of(core_daemon, _cred_auth(cid, sec))
            assert status == 401 and body["error"]["code"] == 401
        # a restricted credential's token cannot mint more credentials
        async with aiohttp.ClientSession() as http:
            async with http.post(core_daemon.url + base, headers={"X-Auth-Token": secret},
                                 json={"application_credential": {"name": "more"}}) as r:
                assert r.status == 403
        # roles beyond the user's own are refused; duplicate names conflict
        with pytest.raises(Forbidden):
            await user.post(base, {"application_credential": {
                "name": "x", "roles": [{"name": "admin"}]}})
        with pytest.raises(Exception, match="Duplicate"):
            await user.post(base, {"application_credential": {"name": "ci"}})
        # another user cannot see them; removing the user's reader role ends the token
        other_id, _ = await _user(admin, "peer", "peer-proj")
        peer = MonostackClient(socket_path=core_daemon.config.api.socket)
        try:
            await peer.login("peer", "peer-pw", "peer-proj")
            with pytest.raises(Forbidden):
                await peer.get(base)
        finally:
            await peer.close()
        assert (await _get(core_daemon, "/v3/auth/projects", secret))[0] == 200
        await admin.delete(f"/v3/projects/{pid}/users/{uid}/roles/{reader}")
        assert (await _get(core_daemon, "/v3/auth/projects", secret))[0] == 401
        status, _, _ = await _token_of(core_daemon, _cred_auth(made["id"], made["secret"]))
        assert status == 401
        # deleting it ends its tokens
        await admin.put(f"/v3/projects/{pid}/users/{uid}/roles/{reader}")
        status, secret, _ = await _token_of(core_daemon, _cred_auth(made["id"], made["secret"]))
        assert status == 201
        await user.delete(f"{base}/{made['id']}")
        assert (await _get(core_daemon, "/v3/auth/projects", secret))[0] == 401
        assert (await user.get(base))["application_credentials"] == []
    finally:
        await user.close()


async def test_system_scope(core_daemon, admin):
    uid, _ = await _user(admin, "sysop")
    admin_role = (await admin.get("/v3/roles?name=admin"))["roles"][0]["id"]
    status, _, _ = await _token_of(core_daemon, {**_password("sysop"),
                                                 "scope": {"system": {"all": True}}})
    assert status == 401  # no system role yet
    await admin.put(f"/v3/system/users/{uid}/roles/{admin_role}")
    assert [r["name"] for r in (await admin.get(f"/v3/system/users/{uid}/roles"))["roles"]] == [
        "admin"]
    await admin.get(f"/v3/system/users/{uid}/roles/{admin_role}")  # 204: held
    listed = (await admin.get("/v3/role_assignments?scope.system=all"))["role_assignments"]
    assert {"user": {"id": uid}, "scope": {"system": {"all": True}},
            "role": {"id": admin_role}, "links": {"assignment": ""}} in listed
    status, secret, body = await _token_of(core_daemon, {**_password("sysop"),
                                                         "scope": {"system": {"all": True}}})
    assert status == 201
    token = body["token"]
    assert token["system"] == {"all": True} and "project" not in token
    assert [r["name"] for r in token["roles"]] == ["admin"] and token["catalog"]
    status, users = await _get(core_daemon, "/v3/users", secret)
    assert status == 200 and "sysop" in {u["name"] for u in users["users"]}
    # the system role does not leak into projects: no project is listed for the user
    assert (await _get(core_daemon, "/v3/auth/projects", secret))[1]["projects"] == []
    status, _, _ = await _token_of(core_daemon, {**_password("sysop"),
                                                 "scope": {"system": {"all": False}}})
    assert status == 400
    await admin.delete(f"/v3/system/users/{uid}/roles/{admin_role}")
    assert (await _get(core_daemon, "/v3/users", secret))[0] == 401
    with pytest.raises(NotFound):
        await admin.get(f"/v3/system/users/{uid}/roles/{admin_role}")


async def test_domains_name_users_and_projects(core_daemon, admin):
    dom = (await admin.post("/v3/domains", {"domain": {"name": "lab",
                                                       "description": "the lab"}}))["domain"]
    assert dom["enabled"] and dom["name"] == "lab"
    assert {d["name"] for d in (await admin.get("/v3/domains"))["domains"]} >= {"Default", "lab"}
    assert (await admin.get("/v3/domains?name=lab"))["domains"][0]["id"] == dom["id"]
    # the same names in two domains are two users and two projects
    p_lab = (await admin.post("/v3/projects", {"project": {
        "name": "shared-name", "domain_id": dom["id"]}}))["project"]
    p_def = (await admin.post("/v3/projects", {"project": {"name": "shared-name"}}))["project"]
    assert p_lab["domain_id"] == dom["id"] and p_def["domain_id"] == "default"
    u_lab = (await admin.post("/v3/users", {"user": {
        "name": "twin", "password": "lab-pw", "domain_id": dom["id"]}}))["user"]
    await admin.post("/v3/users", {"user": {"name": "twin", "password": "def-pw"}})
    member = (await admin.get("/v3/roles?name=member"))["roles"][0]["id"]
    await admin.put(f"/v3/projects/{p_lab['id']}/users/{u_lab['id']}/roles/{member}")
    login = {"identity": {"methods": ["password"], "password": {"user": {
        "name": "twin", "domain": {"name": "lab"}, "password": "lab-pw"}}},
        "scope": {"project": {"name": "shared-name", "domain": {"name": "lab"}}}}
    status, secret, body = await _token_of(core_daemon, login)
    assert status == 201, body
    assert body["token"]["user"]["domain"] == {"id": dom["id"], "name": "lab"}
    assert body["token"]["project"]["id"] == p_lab["id"]
    # the lab password does not open the default domain's twin
    wrong = {"identity": {"methods": ["password"], "password": {"user": {
        "name": "twin", "domain": {"id": "default"}, "password": "lab-pw"}}}}
    assert (await _token_of(core_daemon, wrong))[0] == 401
    assert (await admin.get(f"/v3/users?domain_id={dom['id']}"))["users"][0]["id"] == u_lab["id"]
    with pytest.raises(Exception, match="Duplicate"):
        await admin.post("/v3/domains", {"domain": {"name": "lab"}})
    # disabling the domain ends its tokens and logins; deleting needs it disabled first
    with pytest.raises(Forbidden, match="disable"):
        await admin.delete(f"/v3/domains/{dom['id']}")
    await admin.patch(f"/v3/domains/{dom['id']}", {"domain": {"enabled": False}})
    assert (await _get(core_daemon, "/v3/auth/projects", secret))[0] == 401
    assert (await _token_of(core_daemon, login))[0] == 401
    await admin.delete(f"/v3/domains/{dom['id']}")
    with pytest.raises(NotFound):
        await admin.get(f"/v3/projects/{p_lab['id']}")
    with pytest.raises(NotFound):
        await admin.get(f"/v3/users/{u_lab['id']}")
    with pytest.raises(Forbidden):
        await admin.delete("/v3/domains/default")
    with pytest.raises(NotFound):
        await admin.post("/v3/projects", {"project": {"name": "x", "domain_id": "nope"}})
