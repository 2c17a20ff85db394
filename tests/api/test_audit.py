"""The audit trail through a real `monostack serve`: every mutating call of a scripted run is
recorded (who, from where, what, outcome, request id), none of its secrets are, admins query
it through the API and `monostack audit`, and members are refused."""
from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp
import pytest

from appliance.client import MonostackClient
from tests.daemon import ADMIN_PASSWORD, ROOT, DaemonProcess, _env, monostack_cmd, run_init
from tests.daemon import write_config

SECRETS = ("s3cret-Passw0rd-zz", "n3w-Passw0rd-yy", ADMIN_PASSWORD)


@pytest.fixture
async def daemon(tmp_path):
    path, config = write_config(tmp_path, components=["core"])
    run_init(path)
    d = DaemonProcess(path, config)
    await asyncio.to_thread(d.start)
    try:
        yield d
    finally:
        await asyncio.to_thread(d.stop)


async def test_every_mutating_call_is_audited_without_secrets(daemon):
    config = daemon.config
    async with MonostackClient(socket_path=config.api.socket) as admin:
        await admin.login("admin", ADMIN_PASSWORD, "admin")
        ids: list[tuple[str, str, int]] = []
        async with aiohttp.ClientSession() as http:
            token = {"X-Auth-Token": admin.session.token}

            async def call(method, path, body=None):
                async with http.request(method, daemon.url + path, json=body,
                                        headers=token) as r:
                    ids.append((method, r.headers["x-openstack-request-id"], r.status))
                    return await r.json() if r.status not in (204,) and r.content_length != 0 \
                        else None

            proj = (await call("POST", "/v3/projects", {"project": {"name": "aud"}}))["project"]
            user = (await call("POST", "/v3/users", {"user": {
                "name": "auditee", "password": SECRETS[0]}}))["user"]
            role = (await admin.get("/v3/roles?name=member"))["roles"][0]
            await call("PUT", f"/v3/projects/{proj['id']}/users/{user['id']}/roles/{role['id']}")
            await call("PATCH", f"/v3/users/{user['id']}", {"user": {"password": SECRETS[1]}})
            await call("POST", "/v3/projects", {"project": {"name": "aud"}})  # 409: a failure
            await call("DELETE", f"/v3/projects/{proj['id']}")
            # a login (by password, over TCP) is audited as an authentication
            async with http.post(daemon.url + "/v3/auth/tokens", json={"auth": {"identity": {
                    "methods": ["password"], "password": {"user": {
                        "name": "auditee", "domain": {"id": "default"},
                        "password": SECRETS[1]}}}}}) as r:
                ids.append(("POST", r.headers["x-openstack-request-id"], r.status))
        events = (await admin.get("/monostack/audit?limit=1000"))["events"]
        by_request = {e["request_id"]: e for e in events}
        for method, request_id, status in ids:
            ev = by_request[request_id]
            assert ev["method"] == method and ev["reason"]["reasonCode"] == str(status)
            assert ev["outcome"] == ("success" if status < 400 else "failure")
        created = by_request[ids[0][1]]
        assert created["typeURI"] == "http://schemas.dmtf.org/cloud/audit/1.0/event"
        assert created["action"] == "create" and created["target"]["typeURI"].endswith(
            "/projects")
        assert created["initiator"]["name"] == "admin"
        assert created["initiator"]["host"]["address"] == "127.0.0.1"
        assert created["initiator"]["roles"] == ["admin"]
        login = by_request[ids[-1][1]]
        assert login["action"] == "authenticate" and login["initiator"]["name"] == "auditee"
        assert login["initiator"]["id"] == user["id"]
        assert by_request[ids[3][1]]["target"]["id"] == user["id"]
        # the admin's own socket calls name the local socket
        socket_calls = [e for e in events if e["initiator"]["host"]["address"] == "local socket"]
        assert socket_calls  # the login above went over the socket
        # filters and a failure
        failures = (await admin.get("/monostack/audit?outcome=failure"))["events"]
        assert any(e["reason"]["reasonCode"] == "409" for e in failures)
    # no secret anywhere in the trail's files
    for path in (config.state_dir / "audit").glob("audit-*.jsonl"):
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text
    # `monostack audit` (host-side, as root with the admin password)
    env = _env()
    env["MONOSTACK_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    out = await asyncio.to_thread(subprocess.run, monostack_cmd(
        "--config", str(daemon.config_path), "audit", "--json", "--limit", "500"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = {e["request_id"] for e in json.loads(out.stdout)}
    assert {rid for _, rid, _ in ids} <= listed


async def test_members_cannot_read_the_trail(daemon):
    async with MonostackClient(socket_path=daemon.config.api.socket) as admin:
        await admin.login("admin", ADMIN_PASSWORD, "admin")
        proj = (await admin.post("/v3/projects", {"project": {"name": "m"}}))["project"]
        user = (await admin.post("/v3/users", {"user": {"name": "mm", "password": "pw"}}))["user"]
        role = (await admin.get("/v3/roles?name=member"))["roles"][0]
        await admin.put(f"/v3/projects/{proj['id']}/users/{user['id']}/roles/{role['id']}")
    from appliance.errors import Forbidden
    async with MonostackClient(socket_path=daemon.config.api.socket) as member:
        await member.login("mm", "pw", "m")
        with pytest.raises(Forbidden):
            await member.get("/monostack/audit")
