"""Hostile clients against a real `monostack serve` (a subprocess, identity and API only).

Each test does what an attacker with an API account, or with none, would try, and checks the
appliance holds: a removed role stops working on the very next request with the same token,
a locked account looks exactly like an unknown one and is locked only for the address that
failed, anonymous health probes learn nothing but healthy or not, and an admin token cannot
make the daemon (root) write a backup anywhere but its own backup directory.

Every socket goes to loopback; other source addresses are other loopback addresses
(127.0.0.2 …), which Linux routes to the same host.
"""
from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from appliance.client import MonostackClient
from appliance.state.backup import _write_new
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, write_config

TOKENS = "/identity/v3/auth/tokens"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    path, config = write_config(base, components=["core"],
                                extra={"identity": {"lockout_failures": 5,
                                                    "lockout_seconds": 300}})
    run_init(path)
    proc = DaemonProcess(path, config)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def http(daemon: DaemonProcess, method: str, path: str, *, source: str = "127.0.0.1",
               token: str | None = None, body: object = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict, str, float]:
    """One exchange over TCP from a chosen loopback source address: (status, headers, text,
    seconds)."""
    hdrs = dict(headers or {})
    if token:
        hdrs["X-Auth-Token"] = token
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.monotonic()
        async with session.request(method, daemon.url + path, json=body, headers=hdrs) as r:
            text = await r.text()
            return r.status, dict(r.headers), text, time.monotonic() - t0


def password_auth(name: str, password: str, project: str | None = None) -> dict:
    auth: dict = {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}}}
    if project:
        auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return {"auth": auth}


async def local_admin(daemon: DaemonProcess) -> MonostackClient:
    client = daemon.client()
    await client.login("admin", ADMIN_PASSWORD, "admin")
    return client


async def new_user(admin: MonostackClient, password: str, *roles: str) -> tuple[dict, dict]:
    """A fresh project and a user holding `roles` on it."""
    tag = uuid.uuid4().hex[:8]
    project = (await admin.post("/v3/projects", {"project": {"name": f"p-{tag}"}}))["project"]
    user = (await admin.post("/v3/users", {"user": {"name": f"u-{tag}",
                                                    "password": password}}))["user"]
    for role in roles:
        rid = (await admin.get(f"/v3/roles?name={role}"))["roles"][0]["id"]
        await admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{rid}")
    return project, user


# -- a removed role ------------------------------------------------------------------------------

async def test_a_removed_role_stops_working_on_the_next_request_with_the_same_token(daemon):
    async with await local_admin(daemon) as admin:
        project, user = await new_user(admin, "pw-one-two", "member", "admin")
        status, headers, text, _ = await http(daemon, "POST", TOKENS, body=password_auth(
            user["name"], "pw-one-two", project["name"]))
        assert status == 201, text
        token = headers["X-Subject-Token"]
        assert {r["name"] for r in json.loads(text)["token"]["roles"]} == {"admin", "member"}
        status, _, text, _ = await http(daemon, "POST", "/v3/users", token=token, body={
            "user": {"name": "made-by-" + user["name"]}})
        assert status == 201, text

        admin_role = (await admin.get("/v3/roles?name=admin"))["roles"][0]["id"]
        await admin.delete(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{admin_role}")
        # the very next request with the same token is a member's request
        status, _, text, _ = await http(daemon, "POST", "/v3/users", token=token, body={
            "user": {"name": "again-by-" + user["name"]}})
        assert status == 403, text
        status, _, text, _ = await http(daemon, "GET", "/v3/auth/projects", token=token)
        assert status == 200, text
        # and validating the token shows the roles held now, not the ones it was minted with
        body = await admin.get(TOKENS, headers={"X-Subject-Token": token})
        assert [r["name"] for r in body["token"]["roles"]] == ["member"]

        member_role = (await admin.get("/v3/roles?name=member"))["roles"][0]["id"]
        await admin.delete(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{member_role}")
        # no role left on the token's project: the token is dead
        status, _, text, _ = await http(daemon, "GET", "/v3/auth/projects", token=token)
        assert status == 401, text


# -- lockout -------------------------------------------------------------------------------------

def _shape(status: int, headers: dict, text: str) -> tuple:
    """What a client sees of a refusal, minus what differs on every response."""
    varying = {"date", "x-openstack-request-id"}
    return status, text, tuple(sorted(k.lower() for k in headers if k.lower() not in varying))


async def test_a_locked_account_looks_like_an_unknown_one_and_is_locked_only_for_its_source(
        daemon):
    async with await local_admin(daemon) as admin:
        project, user = await new_user(admin, "right-password", "member")
    name, attacker, elsewhere = user["name"], "127.0.0.2", "127.0.0.1"

    async def login(who: str, password: str, source: str) -> tuple[tuple, float]:
        status, headers, text, took = await http(daemon, "POST", TOKENS, source=source,
                                                 body=password_auth(who, password))
        return _shape(status, headers, text), took

    wrong = [await login(name, f"guess-{i}", attacker) for i in range(5)]
    locked = [await login(name, "right-password", attacker) for _ in range(3)]
    unknown = [await login("no-such-user-" + uuid.uuid4().hex[:6], "right-password", attacker)
               for _ in range(3)]
    # identical status, body and headers: nothing says "locked", nothing says "exists"
    shapes = {shape for shape, _ in wrong + locked + unknown}
    assert len(shapes) == 1, shapes
    status, text, _ = shapes.pop()
    assert status == 401 and "lock" not in text.lower()
    # and roughly the same time: a locked account still pays a password check
    medians = [statistics.median(t for _, t in group) for group in (wrong, locked, unknown)]
    print("\nrefusal medians (s): wrong %.3f, locked %.3f, unknown %.3f" % tuple(medians))
    assert max(medians) < 3 * min(medians), medians

    # the lock holds for the attacker's address only: the user logs in from elsewhere,
    # and over the local socket
    shape, _ = await login(name, "right-password", elsewhere)
    assert shape[0] == 201, shape
    async with daemon.client() as local:
        await local.login(name, "right-password", project["name"])
    shape, _ = await login(name, "right-password", attacker)
    assert shape[0] == 401


async def test_failed_logins_from_tcp_never_lock_the_local_socket(daemon):
    for i in range(8):
        status, _, _, _ = await http(daemon, "POST", TOKENS, source="127.0.0.3",
                                     body=password_auth("admin", f"wrong-{i}"))
        assert status == 401
    async with daemon.client() as local:
        await local.login("admin", ADMIN_PASSWORD, "admin")


# -- health --------------------------------------------------------------------------------------

async def test_anonymous_health_says_only_healthy_or_not(daemon):
    status, _, text, _ = await http(daemon, "GET", "/healthz")
    assert status == 200 and json.loads(text) == {"status": "ok"}
    async with await local_admin(daemon) as admin:
        _, user = await new_user(admin, "member-pw", "member")
        # the local socket (the operators' door) sees every component line
        _, _, local = await admin._send("GET", "/healthz", token=None)
        assert local["status"] == "ok" and "components" in local and "uptime" in local
        status, _, text, _ = await http(daemon, "GET", "/healthz", token=admin.token)
        assert status == 200 and "components" in json.loads(text)
    status, headers, text, _ = await http(daemon, "POST", TOKENS, body=password_auth(
        user["name"], "member-pw"))
    assert status == 201
    for token in (headers["X-Subject-Token"], "not-a-token"):
        status, _, text, _ = await http(daemon, "GET", "/healthz", token=token)
        assert status == 200 and json.loads(text) == {"status": "ok"}, text


# -- backup --------------------------------------------------------------------------------------

async def test_backup_takes_no_path_and_writes_only_into_its_own_directory(daemon, tmp_path):
    target = tmp_path / "owned-by-root"
    async with await local_admin(daemon) as admin:
        for body in ({"path": str(target)}, {"path": str(tmp_path / "new" / "dir" / "x")},
                     {"path": "/etc/monostack"}, {"where": "/tmp"}, ["x"]):
            status, _, text, _ = await http(daemon, "POST", "/monostack/backup",
                                            token=admin.token, body=body)
            assert status == 400, text
            assert ("'path'" in text) == ("path" in json.dumps(body)), text
        assert not target.exists() and not (tmp_path / "new").exists()

        status, _, text, _ = await http(daemon, "POST", "/monostack/backup", token=admin.token)
        assert status == 201, text
        meta = json.loads(text)["backup"]
        written = Path(meta["path"])
        backups = daemon.config.backups
        assert written.parent == backups and written.name == meta["name"]
        assert written.stat().st_mode & 0o777 == 0o600
        assert backups.stat().st_mode & 0o777 == 0o700
        assert json.loads(written.read_bytes())["seq"] == meta["seq"]
        # a second backup never reuses a name
        status, _, text, _ = await http(daemon, "POST", "/monostack/backup", token=admin.token,
                                        body={})
        assert status == 201 and json.loads(text)["backup"]["name"] != meta["name"]

        # a member cannot back up at all
        project, user = await new_user(admin, "m-pw", "member")
    status, headers, _, _ = await http(daemon, "POST", TOKENS, body=password_auth(
        user["name"], "m-pw", project["name"]))
    status, _, text, _ = await http(daemon, "POST", "/monostack/backup",
                                    token=headers["X-Subject-Token"])
    assert status == 403, text


def test_a_link_planted_under_the_backup_name_is_refused_not_followed(tmp_path):
    """The daemon picks an unguessable name; even a link planted under exactly that name (or
    its in-progress name) is refused, and what it points at is untouched."""
    backups, victim = tmp_path / "backups", tmp_path / "victim"
    backups.mkdir(mode=0o700)
    victim.write_text("precious")
    for planted in ("b.json", ".b.json.partial"):
        link = backups / planted
        link.symlink_to(victim)
        with pytest.raises(FileExistsError):
            _write_new(backups, "b.json", {"x": 1})
        assert victim.read_text() == "precious" and link.is_symlink()
        link.unlink()
    # a dangling link (to a file that does not exist yet) is not followed either
    (backups / "b.json").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(FileExistsError):
        _write_new(backups, "b.json", {"x": 1})
    assert not (tmp_path / "would-be-created").exists()
    assert sorted(os.listdir(backups)) == ["b.json"]  # no partial file left behind
