"""Abuse: hostile input on every door of a daemon running every installed component.

Each test sends something a careless or malicious client could send, then checks the answer
is a clean 4xx in the service's own error shape and that the daemon still serves. A 500
anywhere is a bug in the daemon, never an accepted answer.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from appliance.api.util import is_public
from appliance.client import MonostackClient
from appliance.errors import BadRequest, Unauthorized
from tests.daemon import ADMIN_PASSWORD, InProcessDaemon, wait_for, write_config
from tests.reliability.resources import Resources, param_keys
from tests.reliability.support import (
    C, NOVA, data_dirs, installed, new_project_user, raw, require, routes_of, tiny_qcow2,
    upload_image,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Routes whose body is data, not JSON (image files, objects).
RAW_BODY = ("/file", "/stage")
MARK = "abuse" + uuid.uuid4().hex[:6]
TRAVERSALS = [f"../../../../../../tmp/{MARK}-a", f"/tmp/{MARK}-b", "..", ".", "../..",
              f"a/../../{MARK}-c", f"..\\..\\{MARK}-d", f"%2e%2e%2f%2e%2e%2f{MARK}-e",
              f"{MARK}\x00-f", f"~/{MARK}-g", f"/proc/self/{MARK}", f"{MARK}/" * 40]
XML_NASTY = ['a<b>&c"d\'e', "]]><!--", '"]]>', "&amp;&lt;", "<domain type='kvm'>",
             "ünïcødé ☃ 雪 🚀", "<![CDATA[x]]>", "${x}{{y}}%s", "a\u200db"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("abuse")
    _, config = write_config(base, extra={"compute": {"graceful_shutdown_timeout": 1}})
    async with InProcessDaemon(config) as daemon:
        admin = await daemon.admin_client()
        resources = Resources(admin, admin.session.project_id, admin.session.user_id)
        try:
            yield daemon, admin, resources, base
        finally:
            await admin.close()


async def _healthy(daemon) -> None:
    status, body = await raw("GET", daemon.url + "/healthz", timeout=10)
    assert status == 200, body


# -- sizes ---------------------------------------------------------------------------------------

async def test_oversized_bodies_get_413_in_the_services_shape_and_the_daemon_serves_on(env):
    daemon, admin, _, _ = env
    limit = daemon.config.api.max_body_bytes
    pid = admin.session.project_id
    targets = {"/v3/projects": "error", "/identity/v3/users": "error"}
    if installed("image"):
        targets["/image/v2/images"] = "error"
    if installed("volume"):
        targets[f"/volume/v3/{pid}/volumes"] = "overLimit"
    if installed("compute"):
        targets[f"{C}/servers"] = "overLimit"
        targets[f"{C}/os-keypairs"] = "overLimit"
    if installed("network"):
        targets["/network/v2.0/networks"] = "NeutronError"
    blob = json.dumps({"x": "y" * (limit + 10)}).encode()
    for path, key in targets.items():
        status, text = await raw("POST", daemon.url + path, token=admin.token, data=blob,
                                 headers={"Content-Type": "application/json"})
        assert status == 413, f"{path}: {status} {text[:200]}"
        assert key in json.loads(text), f"{path}: not an OpenStack-shaped body: {text[:200]}"
    await _healthy(daemon)


async def test_huge_headers_are_refused_by_the_parser_and_the_daemon_serves_on(env):
    daemon, admin, _, _ = env
    async with aiohttp.ClientSession() as http:
        for headers in ({"X-Auth-Token": "a" * 100_000}, {"X-Big": "b" * 70_000},
                        {f"X-H{i}": "v" * 100 for i in range(500)}):
            try:
                async with http.get(daemon.url + "/v3/projects", headers=headers) as r:
                    assert r.status in (400, 413, 431), r.status
            except aiohttp.ClientError:
                pass  # the server may also just drop the connection: both are refusals
    huge_url = daemon.url + "/v3/projects?" + "a=" + "x" * 100_000
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(huge_url, headers={"X-Auth-Token": admin.token}) as r:
                assert r.status in (400, 414, 431), r.status
        except aiohttp.ClientError:
            pass
    await _healthy(daemon)
    assert (await admin.get("/v3/projects"))["projects"]


# -- malformed and mistyped JSON on every route --------------------------------------------------

MALFORMED = [b"{", b'{"a": }', b"\xff\xfe\x00garbage", b"[1, 2", b"nul", b'{"a": "\xc3\x28"}',
             b"{" * 5000 + b"}" * 5000]
MISTYPED = [b"[]", b"null", b"123", b'"a string"', b"true", b"{}", b'{"a": null}']


def _wrapper_keys(path: str) -> list[str]:
    """Plausible top-level keys for a route's body, to reach deeper validation too."""
    tail = [p for p in path.split("/") if p and not p.startswith("{")]
    last = tail[-1] if tail else ""
    singular = {"servers": "server", "volumes": "volume", "snapshots": "snapshot",
                "projects": "project", "users": "user", "roles": "role", "flavors": "flavor",
                "os-keypairs": "keypair", "os-server-groups": "server_group", "images": "image",
                "networks": "network", "subnets": "subnet", "ports": "port",
                "routers": "router", "security-groups": "security_group",
                "security-group-rules": "security_group_rule", "floatingips": "floatingip",
                "metadata": "metadata", "os-volume_attachments": "volumeAttachment",
                "os-interface": "interfaceAttachment", "remote-consoles": "remote_console",
                "os-extra_specs": "extra_specs", "tokens": "auth"}
    keys = [singular[k] for k in tail[-2:] if k in singular]
    if last == "action":
        keys += ["os-stop", "os-start", "reboot", "os-extend", "os-reset_status", "createImage",
                 "addTenantAccess", "removeTenantAccess", "os-attach", "revert",
                 "os-volume_upload_image", "rebuild", "resize", "lock", "pause"]
    if "os-quota-sets" in path:
        keys.append("quota_set")
    if "quotas" in path:
        keys.append("quota")
    return keys


def _typed_bodies(path: str) -> list[bytes]:
    """Valid JSON of the wrong shape: wrong types where objects, strings and numbers go."""
    out = []
    for key in _wrapper_keys(path):
        for value in ([], "str", 7, None, True, {"name": []}, {"name": {"$ne": 1}},
                      {"name": "x", "size": "big", "vcpus": -1, "ram": "1e9", "disk": [],
                       "id": {}, "tenant": [], "new_size": "x", "flavorRef": [], "imageRef": 5,
                       "metadata": [], "networks": "x", "tags": "x", "volumeId": [],
                       "identity": "x", "password": 5, "status": [], "member": []},
                      {"identity": {"methods": "password", "password": []}}):
            out.append(json.dumps({key: value}).encode())
    return out


async def test_malformed_and_mistyped_json_never_gets_a_500(env):
    daemon, admin, resources, _ = env
    # identity writes go to a throwaway user and project: a body that happens to be valid
    # (a password of 5, a new name) must not lock the admin out of the rest of the suite
    victim, vuser, vproject = await new_project_user(admin, daemon.config.api.socket)
    await victim.close()
    own = {"projects/{project_id}": vproject["id"], "users/{user_id}": vuser["id"],
           "quotas/{project_id}": vproject["id"], "os-quota-sets/{project_id}": vproject["id"],
           "os-quota-sets/{target_project_id}": vproject["id"]}
    failures: list[str] = []
    clean_400 = 0
    async with aiohttp.ClientSession() as http:
        for method, path, handler in routes_of(daemon.appliance.app):
            if method not in ("POST", "PUT", "PATCH") or path.endswith(RAW_BODY) \
                    or path.startswith("/swift/v1"):
                continue
            if Resources.missing(path):
                continue  # the authz matrix reports it
            url = daemon.url + await resources.fill(path, own)
            ctype = ("application/openstack-images-v2.1-json-patch"
                     if method == "PATCH" and path.startswith("/image") else "application/json")
            for body in MALFORMED + MISTYPED + _typed_bodies(path):
                headers = {"X-Auth-Token": admin.token, "Content-Type": ctype}
                async with http.request(method, url, data=body, headers=headers) as r:
                    text = await r.text()
                    if r.status >= 500:
                        failures.append(f"{method} {path} {body[:60]!r} → {r.status} {text[:160]}")
                    elif r.status == 400 and body in MALFORMED:
                        clean_400 += 1
    assert not failures, "500s (each one a daemon bug):\n" + "\n".join(failures)
    assert clean_400 >= 20
    await _healthy(daemon)


# -- names that reach the disk ---------------------------------------------------------------------

def _outside_roots_with_mark(base: Path, config) -> list[Path]:
    roots = [Path(r) for r in data_dirs(config)]
    found = []
    for top, depth in ((base, 99), (base.parent, 1), (Path("/tmp"), 2), (Path("/"), 1),
                       (Path("/var/lib/monostack-test"), 1)):
        if not top.exists():
            continue
        for p in _walk(top, depth):
            if MARK in p.name:
                if not any(r in p.parents for r in roots):
                    found.append(p)
    return found


def _walk(top: Path, depth: int):
    try:
        for p in top.iterdir():
            yield p
            if depth > 1 and p.is_dir() and not p.is_symlink():
                yield from _walk(p, depth - 1)
    except OSError:
        return


async def test_traversal_names_never_create_files_outside_the_roots(env):
    daemon, admin, _, base = env
    pid = admin.session.project_id
    accepted = 0
    for name in TRAVERSALS:
        try:
            if installed("image"):
                img = await upload_image(admin, name)
                assert img["name"] == name and img["status"] == "active"
                accepted += 1
            if installed("volume"):
                vol = (await admin.post(f"/volume/v3/{pid}/volumes",
                                        {"volume": {"name": name, "size": 1}}))["volume"]
                assert vol["name"] == name
                accepted += 1
                await _delete_when_settled(admin, f"/volume/v3/{pid}/volumes/{vol['id']}")
        except BadRequest:
            pass  # refusing the name is as good as storing it safely
    if installed("compute") and installed("image"):
        image = await upload_image(admin, "boot")
        for name in TRAVERSALS[:6]:
            try:
                srv = (await admin.post(f"{C}/servers", {"server": {
                    "name": name, "imageRef": image["id"], "flavorRef": "1",
                    "config_drive": True}}, headers=NOVA))["server"]
            except BadRequest:
                continue
            s = await _wait_server(admin, srv["id"])
            assert s["name"] == name
            accepted += 1
    if installed("object"):
        await admin.request("PUT", f"/swift/v1/AUTH_{pid}/trav")
        for name in TRAVERSALS:
            from urllib.parse import quote
            for path in (f"/swift/v1/AUTH_{pid}/trav/{name}",
                         f"/swift/v1/AUTH_{pid}/trav/{quote(name, safe='')}"):
                status, text = await raw("PUT", daemon.url + path, token=admin.token,
                                         data=b"data")
                assert status < 500, f"{path}: {status} {text[:200]}"
                accepted += status == 201
            for container in ("..", f"..%2f{MARK}", f"{MARK}%00x"):
                status, text = await raw("PUT", daemon.url + f"/swift/v1/AUTH_{pid}/{container}",
                                         token=admin.token)
                assert status < 500, f"container {container}: {status} {text[:200]}"
    assert accepted > 0
    outside = _outside_roots_with_mark(base, daemon.config)
    assert not outside, f"files created outside the data roots: {outside}"
    await _healthy(daemon)


async def _delete_when_settled(client, path: str) -> None:
    async def settled():
        return (await client.get(path))["volume"]["status"] not in ("creating", "downloading")
    await wait_for(settled, timeout=30, interval=0.05)
    await client.delete(path)


async def _wait_server(client, sid: str) -> dict:
    async def done():
        s = (await client.get(f"{C}/servers/{sid}", headers=NOVA))["server"]
        return s if s["status"] in ("ACTIVE", "ERROR") else None
    return await wait_for(done, timeout=30, interval=0.05)


# -- strings that reach libvirt XML -----------------------------------------------------------------

async def test_xml_special_strings_round_trip_and_never_break_the_domain_xml(env):
    require("compute", "image")
    daemon, admin, _, _ = env
    comp = daemon.appliance.ctx.components.compute
    image = await upload_image(admin, "xml-boot")
    for i, nasty in enumerate(XML_NASTY):
        key_name = None
        try:
            kp = (await admin.post(f"{C}/os-keypairs", {"keypair": {"name": f"k{i} {nasty}"}},
                                   headers=NOVA))["keypair"]
            key_name = kp["name"]
            assert key_name == f"k{i} {nasty}"
        except BadRequest:
            pass  # Nova limits key names to [\w .@-]: refusing is the documented answer
        meta = {f"m{i}": nasty, "plain": "x"}
        srv = (await admin.post(f"{C}/servers", {"server": {
            "name": nasty, "imageRef": image["id"], "flavorRef": "1", "metadata": meta,
            **({"key_name": key_name} if key_name else {})}}, headers=NOVA))["server"]
        s = await _wait_server(admin, srv["id"])
        assert s["status"] == "ACTIVE", s.get("fault")
        assert s["name"] == nasty and s["metadata"] == meta
        if key_name:
            assert s["key_name"] == key_name
        xml = await comp.driver.domain_xml(srv["id"])
        root = ET.fromstring(xml)  # still well-formed
        assert root.findtext("uuid") == srv["id"]
        from appliance.compute.libvirt.domain_xml import parse_metadata
        assert parse_metadata(xml).get("display-name") == nasty[:200]
        await admin.delete(f"{C}/servers/{srv['id']}")
    await _healthy(daemon)


async def test_strings_xml_cannot_carry_are_refused_at_the_api_not_at_boot(env):
    """Control characters and lone surrogates cannot live in XML (or UTF-8): a clean 400 at
    create, never a server that goes to ERROR or a 500."""
    require("compute", "image")
    daemon, admin, _, _ = env
    image = await upload_image(admin, "xml-bad")
    for bad in ("bell\x07", "nul\x00x", "esc\x1b[31m", "\ud800lone", "\ufffe", "tab\tx", "\x85"):
        body = json.dumps({"server": {"name": bad, "imageRef": image["id"], "flavorRef": "1"}})
        status, text = await raw("POST", daemon.url + f"{C}/servers", token=admin.token,
                                 data=body.encode(), headers={"Content-Type": "application/json"})
        if status == 202:
            sid = json.loads(text)["server"]["id"]
            s = await _wait_server(admin, sid)
            await admin.delete(f"{C}/servers/{sid}")
            pytest.fail(f"name {bad!r} accepted, then the server went {s['status']}")
        assert status == 400, f"{bad!r}: {status} {text[:200]}"
    await _healthy(daemon)


async def test_lone_surrogates_in_names_are_refused_or_stored_never_a_500(env):
    daemon, admin, _, _ = env
    pid = admin.session.project_id
    cases = [("POST", "/v3/projects", {"project": {"name": "x\ud800y"}}),
             ("POST", "/v3/users", {"user": {"name": "u\udfffz", "password": "p\ud800"}})]
    if installed("image"):
        cases.append(("POST", "/image/v2/images", {"name": "i\ud800", "disk_format": "raw",
                                                    "container_format": "bare", "k": "\udc00"}))
    if installed("volume"):
        cases.append(("POST", f"/volume/v3/{pid}/volumes",
                      {"volume": {"name": "v\ud800", "size": 1, "metadata": {"a": "\ud800"}}}))
    if installed("compute"):
        cases.append(("POST", f"{C}/os-keypairs", {"keypair": {"name": "k\ud800"}}))
    for method, path, body in cases:
        status, text = await raw(method, daemon.url + path, token=admin.token,
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
        assert status < 500, f"{path}: {status} {text[:200]}"
    # and the store still opens and writes: the daemon is fine
    await admin.post("/v3/projects", {"project": {"name": "after-surrogates-" + MARK}})
    await _healthy(daemon)


# -- identity ----------------------------------------------------------------------------------------

async def test_forged_identity_headers_are_ignored(env):
    daemon, admin, _, _ = env
    member, user, project = await new_project_user(admin, daemon.config.api.socket)
    forged = {"X-Roles": "admin", "X-User-Id": admin.session.user_id,
              "X-Project-Id": admin.session.project_id, "X-Forwarded-For": "127.0.0.1",
              "X-Identity-Status": "Confirmed", "X-Service-Catalog": "[]",
              "X-Tenant-Id": admin.session.project_id, "X-Is-Admin-Project": "True",
              "X-Real-IP": "127.0.0.1", "X-Remote-User": "admin"}
    try:
        who = await member.get("/monostack/whoami", headers=forged)
        assert who["user_id"] == user["id"] and who["project_id"] == project["id"]
        assert who["roles"] == ["member"]
        status, _ = await raw("POST", daemon.url + "/v3/projects", token=member.token,
                              json_body={"project": {"name": "forged-" + MARK}}, headers=forged)
        assert status == 403
        status, _ = await raw("GET", daemon.url + "/v3/users", token=member.token, headers=forged)
        assert status == 403
        # without any token, forged headers alone are nobody
        status, _ = await raw("GET", daemon.url + "/monostack/whoami", headers=forged)
        assert status == 401
    finally:
        await member.close()


async def test_huge_passwords_are_refused_fast(env):
    daemon, admin, _, _ = env
    limit = daemon.config.api.max_body_bytes
    for size in (5_000, 100_000, min(1_000_000, limit - 1024)):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": "p" * size}}}}}
        t0 = time.monotonic()
        status, _ = await raw("POST", daemon.url + "/identity/v3/auth/tokens", json_body=body)
        took = time.monotonic() - t0
        assert status in (400, 401), status
        assert took < 3.0, f"{size}-byte password took {took:.1f}s"
    body = {"user": {"name": "huge-" + MARK, "password": "p" * 1_000_000}}
    t0 = time.monotonic()
    status, _ = await raw("POST", daemon.url + "/v3/users", token=admin.token, json_body=body)
    assert status in (400, 413) and time.monotonic() - t0 < 3.0
    # a 1 MB+ body is the body limit's job: 413, fast
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "password": "p" * (limit + 1)}}}}}
    t0 = time.monotonic()
    status, _ = await raw("POST", daemon.url + "/identity/v3/auth/tokens", json_body=body)
    assert status == 413 and time.monotonic() - t0 < 3.0
    # the admin is not locked out by any of this
    async with MonostackClient(socket_path=daemon.config.api.socket) as c:
        await c.login("admin", ADMIN_PASSWORD, "admin")


async def _refused(daemon, token: str) -> bool:
    status, _ = await raw("GET", daemon.url + "/v3/auth/projects", token=token)
    return status == 401


async def test_revoked_disabled_and_password_changed_tokens_are_refused(env):
    daemon, admin, _, _ = env
    # revoked
    member, user, project = await new_project_user(admin, daemon.config.api.socket)
    token = member.token
    assert not await _refused(daemon, token)
    status, _ = await raw("DELETE", daemon.url + "/v3/auth/tokens", token=token,
                          headers={"X-Subject-Token": token})
    assert status == 204 and await _refused(daemon, token)
    # disabled user: refused, and stays refused after re-enabling (Keystone revokes)
    await member.login(user["name"], user["password"], project["name"])
    token = member.token
    await admin.patch(f"/v3/users/{user['id']}", {"user": {"enabled": False}})
    assert await _refused(daemon, token)
    with pytest.raises(Unauthorized):
        await member.login(user["name"], user["password"], project["name"])
    await admin.patch(f"/v3/users/{user['id']}", {"user": {"enabled": True}})
    assert await _refused(daemon, token), "re-enabling a user revived its old tokens"
    # password change
    await member.login(user["name"], user["password"], project["name"])
    token = member.token
    await admin.patch(f"/v3/users/{user['id']}", {"user": {"password": "new-Pa55-" + MARK}})
    assert await _refused(daemon, token)
    await member.login(user["name"], "new-Pa55-" + MARK, project["name"])
    assert not await _refused(daemon, member.token)
    # a rescoped token does not outlive its parent's revocation reasons
    await admin.patch(f"/v3/projects/{project['id']}", {"project": {"enabled": False}})
    assert await _refused(daemon, member.token)
    await admin.patch(f"/v3/projects/{project['id']}", {"project": {"enabled": True}})
    # deleted user
    await admin.delete(f"/v3/users/{user['id']}")
    assert await _refused(daemon, member.token)
    await member.close()


async def test_expired_tokens_are_refused(tmp_path):
    _, config = write_config(tmp_path, components=["core"], extra={"identity": {"token_ttl": 1}})
    async with InProcessDaemon(config, components=[]) as daemon:
        client = await daemon.admin_client()
        try:
            assert not await _refused(daemon, client.token)
            await asyncio.sleep(1.2)
            assert await _refused(daemon, client.token)
            with pytest.raises(Unauthorized):  # nor can an expired token be rescoped
                await client.switch_project(client.session.project_id)
        finally:
            await client.close()


# -- console tokens ------------------------------------------------------------------------------

async def test_console_tokens_are_single_use_short_lived_and_same_origin(env):
    require("compute", "image")
    daemon, admin, _, _ = env
    comp = daemon.appliance.ctx.components.compute
    image = await upload_image(admin, "console-boot")
    srv = (await admin.post(f"{C}/servers", {"server": {
        "name": "console", "imageRef": image["id"], "flavorRef": "1"}}, headers=NOVA))["server"]
    await _wait_server(admin, srv["id"])
    body = {"remote_console": {"protocol": "serial", "type": "serial"}}

    async def console_url() -> str:
        return (await admin.post(f"{C}/servers/{srv['id']}/remote-consoles", body,
                                 headers=NOVA))["remote_console"]["url"]

    async def handshake(url: str, **headers: str) -> int:
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(url, headers=headers)
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            await ws.close()
            return 101

    first, second = await console_url(), await console_url()
    assert first != second
    assert await handshake(first) == 101
    assert await handshake(first) == 401, "a console token opened a second websocket"
    # a foreign Origin is refused, and does not burn the token for the real page
    assert await handshake(second, Origin="http://evil.example") == 403
    assert await handshake(second) == 101
    # a stale token
    comp.console_tokens.ttl = 0.2
    try:
        stale = await console_url()
        await asyncio.sleep(0.4)
        assert await handshake(stale) == 401
    finally:
        from appliance.compute.console import TOKEN_TTL
        comp.console_tokens.ttl = TOKEN_TTL
    # a made-up token, and none
    assert await handshake(first.split("token=")[0] + "token=" + "A" * 43) == 401
    assert await handshake(first.split("?")[0]) == 401
    # another project's member cannot get a console URL for our server
    member, _, _ = await new_project_user(admin, daemon.config.api.socket)
    try:
        status, _ = await raw("POST", daemon.url + f"{C}/servers/{srv['id']}/remote-consoles",
                              token=member.token, json_body=body, headers=NOVA)
        assert status in (403, 404)
    finally:
        await member.close()
    await admin.delete(f"{C}/servers/{srv['id']}")
    await _healthy(daemon)
