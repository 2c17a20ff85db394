"""Keystone v3 through our own client, against a real in-process daemon."""
import asyncio
import time

import aiohttp
import pytest

from appliance.client import MonostackClient
from appliance.errors import Forbidden, NotFound, Unauthorized
from tests.daemon import ADMIN_PASSWORD


async def test_token_carries_catalog_with_identity_and_project_scope(admin):
    s = admin.session
    assert s.is_admin and s.project_name == "admin"
    types = {e["type"] for e in s.catalog}
    assert "identity" in types
    ep = next(e for e in s.catalog if e["type"] == "identity")["endpoints"][0]
    assert ep["url"].endswith("/identity") and ep["region_id"] == ep["region"] == "RegionOne"


async def test_wrong_password_is_401_with_openstack_error_body(core_daemon):
    async with aiohttp.ClientSession() as http:
        async with http.post(core_daemon.url + "/v3/auth/tokens", json={"auth": {"identity": {
                "methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"}, "password": "nope"}}}}}) as r:
            assert r.status == 401
            body = await r.json()
            assert body["error"]["code"] == 401 and body["error"]["title"] == "Unauthorized"
            assert r.headers["x-openstack-request-id"].startswith("req-")


async def test_malformed_json_is_400_not_500(core_daemon):
    async with aiohttp.ClientSession() as http:
        async with http.post(core_daemon.url + "/v3/auth/tokens", data=b"{not json") as r:
            assert r.status == 400
            assert "Malformed JSON" in (await r.json())["error"]["message"]


async def test_revoked_token_is_refused(core_daemon, admin):
    other = await core_daemon.admin_client()
    token = other.token
    await admin.delete("/v3/auth/tokens", headers={"X-Subject-Token": token})
    with pytest.raises(Unauthorized):
        await other.get("/v3/auth/projects")
    await other.close()


async def test_expired_token_is_refused(core_daemon, admin):
    other = await core_daemon.admin_client()
    ident = core_daemon.appliance.ctx.identity
    from appliance.identity.service import token_key
    rec = ident.tokens.require(token_key(other.token))
    rec.expires_at = time.time() - 1
    await ident.tokens.save(rec)
    with pytest.raises(Unauthorized):
        await other.get("/v3/auth/projects")
    await other.close()


async def test_member_cannot_list_users_but_sees_own_projects(core_daemon, admin):
    project = (await admin.post("/v3/projects", {"project": {"name": "team"}}))["project"]
    user = (await admin.post("/v3/users", {"user": {"name": "alice", "password": "alice-pw",
                                                    "default_project_id": project["id"]}}))["user"]
    roles = (await admin.get("/v3/roles?name=member"))["roles"]
    await admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{roles[0]['id']}")
    alice = MonostackClient(socket_path=core_daemon.config.api.socket)
    await alice.login("alice", "alice-pw", "team")
    assert alice.session.roles == ["member"] and not alice.session.is_admin
    with pytest.raises(Forbidden):
        await alice.get("/v3/users")
    with pytest.raises(Forbidden):
        await alice.post("/v3/projects", {"project": {"name": "mine"}})
    projects = (await alice.get("/v3/auth/projects"))["projects"]
    assert [p["name"] for p in projects] == ["team"]
    assigns = (await admin.get(f"/v3/role_assignments?user.id={user['id']}&include_names=1"))
    assert assigns["role_assignments"][0]["role"]["name"] == "member"
    await alice.close()


async def test_lockout_after_repeated_failures_even_with_right_password(core_daemon, admin):
    await admin.post("/v3/users", {"user": {"name": "bob", "password": "bob-pw"}})
    c = MonostackClient(socket_path=core_daemon.config.api.socket)
    for _ in range(core_daemon.config.identity.lockout_failures):
        with pytest.raises(Unauthorized):
            await c.login("bob", "wrong")
    with pytest.raises(Unauthorized) as locked:
        await c.login("bob", "bob-pw")
    with pytest.raises(Unauthorized) as unknown:
        await c.login("nobody-at-all", "bob-pw")
    # a locked account says nothing an unknown user would not
    assert str(locked.value) == str(unknown.value) and "locked" not in str(locked.value)
    # an admin's password reset unlocks
    bob = (await admin.get("/v3/users?name=bob"))["users"][0]
    await admin.patch(f"/v3/users/{bob['id']}", {"user": {"password": "bob-pw2"}})
    await c.login("bob", "bob-pw2")
    await c.close()


async def test_concurrent_logins_of_one_user_derive_the_password_once(core_daemon, admin,
                                                                       monkeypatch):
    """Logins of one user are serialised for exact lockout counting; a password scrypt just
    accepted is recognised without deriving it again, so a burst of logins does not queue
    behind one scrypt each. A wrong password still pays (and counts) in full."""
    import appliance.identity.service as service
    await admin.post("/v3/users", {"user": {"name": "dave", "password": "d-pw"}})
    calls = []
    real = service.verify_password

    def counting(password, stored):
        calls.append(password)
        return real(password, stored)
    monkeypatch.setattr(service, "verify_password", counting)
    clients = [MonostackClient(socket_path=core_daemon.config.api.socket) for _ in range(20)]
    try:
        await asyncio.gather(*(c.login("dave", "d-pw") for c in clients))
        assert calls == ["d-pw"]
        with pytest.raises(Unauthorized):
            await clients[0].login("dave", "d-pw-wrong")
        assert calls == ["d-pw", "d-pw-wrong"]
        await clients[0].login("dave", "d-pw")  # a failure forgets the remembered success
        assert calls == ["d-pw", "d-pw-wrong", "d-pw"]
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_password_change_and_disable_invalidate_tokens(core_daemon, admin):
    project = (await admin.post("/v3/projects", {"project": {"name": "p2"}}))["project"]
    user = (await admin.post("/v3/users", {"user": {"name": "carol", "password": "c-pw"}}))["user"]
    role = (await admin.get("/v3/roles?name=reader"))["roles"][0]
    await admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
    carol = MonostackClient(socket_path=core_daemon.config.api.socket)
    await carol.login("carol", "c-pw", "p2")
    await carol.get("/v3/auth/projects")
    await admin.patch(f"/v3/users/{user['id']}", {"user": {"password": "new-pw"}})
    with pytest.raises(Unauthorized):
        await carol.get("/v3/auth/projects")
    with pytest.raises(Unauthorized):  # the old password is not remembered as good
        await carol.login("carol", "c-pw", "p2")
    await carol.login("carol", "new-pw", "p2")
    await admin.patch(f"/v3/users/{user['id']}", {"user": {"enabled": False}})
    with pytest.raises(Unauthorized):
        await carol.get("/v3/auth/projects")
    await carol.close()


async def test_forged_identity_headers_are_ignored(core_daemon):
    async with aiohttp.ClientSession() as http:
        async with http.get(core_daemon.url + "/v3/users", headers={
                "X-Roles": "admin", "X-User-Id": "x", "X-Identity-Status": "Confirmed"}) as r:
            assert r.status == 401


async def test_version_discovery_documents_have_self_links(core_daemon):
    async with aiohttp.ClientSession() as http:
        async with http.get(core_daemon.url + "/") as r:
            body = await r.json()
            assert body["versions"]["values"][0]["links"][0]["rel"] == "self"
        async with http.get(core_daemon.url + "/v3") as r:
            assert (await r.json())["version"]["id"].startswith("v3")


async def test_unknown_path_is_404_json(admin):
    with pytest.raises(NotFound):
        await admin.get("/v3/nothing-here")


async def test_second_daemon_on_same_state_dir_refuses(core_daemon):
    from appliance.service import Appliance, StateDirLocked
    other = Appliance(core_daemon.config, components=[])
    with pytest.raises(StateDirLocked, match="already owns state dir"):
        await other.startup()


async def test_token_validation_and_head(admin):
    tok = admin.token
    body = await admin.get("/v3/auth/tokens", headers={"X-Subject-Token": tok})
    assert body["token"]["user"]["name"] == "admin"
    await admin.request("HEAD", "/v3/auth/tokens", headers={"X-Subject-Token": tok})
