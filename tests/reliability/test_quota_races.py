"""Quotas hold under real concurrency: many parallel creates against a quota of 10.

A `monostack serve` process (libvirt test:///default) gets 25 creates of one kind at once from
a member of a fresh project, each on its own TCP connection. Exactly as many as the quota
allows may succeed, the others get the service's over-quota answer, and afterwards the
project's usage is the quota with nothing left reserved. Creates whose work then fails give
their quota back.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, wait_for, write_config
from tests.reliability.support import (
    C, N, NOVA, new_project_user, raw, require, tiny_qcow2, upload_image,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMIT = 10
PARALLEL = 25
V = "/volume/v3"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    require("compute", "image", "volume", "network")
    base: Path = tmp_path_factory.mktemp("quota-races")
    path, config = write_config(base, extra={"compute": {"graceful_shutdown_timeout": 1}})
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    admin = daemon.client()
    member = None
    try:
        await admin.login("admin", ADMIN_PASSWORD, "admin")
        member, _, project = await new_project_user(admin, config.api.socket, prefix="quota")
        yield daemon, admin, member, project["id"]
    finally:
        if member is not None:
            await member.close()
        await admin.close()
        daemon.stop()


async def _parallel(daemon, member, path: str, bodies: list[dict]) -> list[tuple[int, str]]:
    """Send every body at once, each on its own connection, released together."""
    gate = asyncio.Event()

    async def one(body: dict) -> tuple[int, str]:
        await gate.wait()
        return await raw("POST", daemon.url + path, token=member.token, json_body=body,
                         headers=NOVA, timeout=60)

    tasks = [asyncio.create_task(one(b)) for b in bodies]
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*tasks)


def _split(answers: list[tuple[int, str]], ok: set[int], refused: int,
           words: str) -> list[dict]:
    created = [json.loads(text) for status, text in answers if status in ok]
    others = [(status, text) for status, text in answers if status not in ok]
    assert all(status == refused and words in text for status, text in others), others
    return created


async def test_parallel_volume_creates_never_pass_the_volume_or_gigabyte_quota(env):
    daemon, admin, member, pid = env
    await admin.put(f"{V}/{pid}/os-quota-sets/{pid}",
                    {"quota_set": {"volumes": LIMIT, "gigabytes": 1000}})
    answers = await _parallel(daemon, member, f"{V}/{pid}/volumes",
                              [{"volume": {"size": 1, "name": f"race-{i}"}}
                               for i in range(PARALLEL)])
    created = _split(answers, {202}, 413, "quota")
    assert len(created) == LIMIT
    vols = (await member.get(f"{V}/{pid}/volumes"))["volumes"]
    assert len(vols) == LIMIT

    # gigabytes: room for 3 more GiB, 25 creates of 1 GiB race for it
    await admin.put(f"{V}/{pid}/os-quota-sets/{pid}",
                    {"quota_set": {"volumes": 100, "gigabytes": LIMIT + 3}})
    answers = await _parallel(daemon, member, f"{V}/{pid}/volumes",
                              [{"volume": {"size": 1}} for _ in range(PARALLEL)])
    assert len(_split(answers, {202}, 413, "gigabytes")) == 3
    usage = (await admin.get(f"{V}/{pid}/os-quota-sets/{pid}?usage=true"))["quota_set"]
    assert usage["volumes"]["in_use"] == LIMIT + 3
    assert usage["gigabytes"] == {"limit": LIMIT + 3, "in_use": LIMIT + 3, "reserved": 0,
                                  "allocated": 0}

    async def settled():
        vols = (await member.get(f"{V}/{pid}/volumes/detail"))["volumes"]
        return all(v["status"] == "available" for v in vols)
    await wait_for(settled, timeout=60)
    for v in (await member.get(f"{V}/{pid}/volumes"))["volumes"]:
        await member.delete(f"{V}/{pid}/volumes/{v['id']}")

    async def gone():
        return not (await member.get(f"{V}/{pid}/volumes"))["volumes"]
    await wait_for(gone, timeout=60)


async def test_parallel_server_creates_never_pass_the_instance_quota(env):
    daemon, admin, member, pid = env
    image = await upload_image(member, "race-boot", tiny_qcow2())
    await admin.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"instances": LIMIT}},
                    headers=NOVA)
    body = {"server": {"imageRef": image["id"], "flavorRef": "1", "networks": "none"}}
    answers = await _parallel(daemon, member, f"{C}/servers",
                              [{"server": {**body["server"], "name": f"race-{i}"}}
                               for i in range(PARALLEL)])
    created = _split(answers, {202}, 403, "Quota exceeded for instances")
    assert len(created) == LIMIT
    detail = (await member.get(f"{C}/os-quota-sets/{pid}/detail", headers=NOVA))["quota_set"]
    assert detail["instances"] == {"limit": LIMIT, "in_use": LIMIT, "reserved": 0}

    # cores: a request for several servers at once counts as all of them
    await admin.put(f"{C}/os-quota-sets/{pid}",
                    {"quota_set": {"instances": 100, "cores": LIMIT + 4}}, headers=NOVA)
    answers = await _parallel(daemon, member, f"{C}/servers",
                              [{"server": {**body["server"], "name": f"pair-{i}",
                                           "min_count": 2, "max_count": 2}}
                               for i in range(PARALLEL)])
    assert len(_split(answers, {202}, 403, "Quota exceeded for cores")) == 2
    servers = (await member.get(f"{C}/servers", headers=NOVA))["servers"]
    assert len(servers) == LIMIT + 4
    for s in servers:
        await member.delete(f"{C}/servers/{s['id']}", headers=NOVA)

    async def gone():
        return not (await member.get(f"{C}/servers", headers=NOVA))["servers"]
    await wait_for(gone, timeout=60)
    detail = (await member.get(f"{C}/os-quota-sets/{pid}/detail", headers=NOVA))["quota_set"]
    assert detail["cores"]["in_use"] == 0 and detail["cores"]["reserved"] == 0


async def test_parallel_network_and_port_creates_never_pass_their_quotas(env):
    daemon, admin, member, pid = env
    await admin.put(f"{N}/quotas/{pid}", {"quota": {"network": LIMIT, "port": LIMIT}})
    answers = await _parallel(daemon, member, f"{N}/networks",
                              [{"network": {"name": f"race-{i}"}} for i in range(PARALLEL)])
    nets = _split(answers, {201}, 409, "Quota exceeded for resources: ['network']")
    # Neutron's OverQuota is a Conflict (neutron-lib), not Nova/Cinder's 413 overLimit
    assert all(json.loads(text)["NeutronError"]["type"] == "OverQuota"
               for status, text in answers if status == 409)
    assert len(nets) == LIMIT
    net = nets[0]["network"]
    await member.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.77.0.0/24"}})
    answers = await _parallel(daemon, member, f"{N}/ports",
                              [{"port": {"network_id": net["id"], "name": f"p-{i}"}}
                               for i in range(PARALLEL)])
    ports = _split(answers, {201}, 409, "Quota exceeded for resources: ['port']")
    mine = (await member.get(f"{N}/ports?project_id={pid}"))["ports"]
    assert len(ports) == len(mine) == LIMIT
    detail = (await member.get(f"{N}/quotas/{pid}/details"))["quota"]
    assert detail["port"] == {"limit": LIMIT, "used": LIMIT, "reserved": 0}
    assert detail["network"] == {"limit": LIMIT, "used": LIMIT, "reserved": 0}
    for p in mine:
        await member.delete(f"{N}/ports/{p['id']}")
    for n in nets:
        await member.delete(f"{N}/networks/{n['network']['id']}")


async def test_refused_work_gives_its_quota_back(env):
    """A create that fails after its reservation (a volume from a missing snapshot, a port
    on a full subnet) leaves nothing reserved: the whole quota can be used afterwards."""
    daemon, admin, member, pid = env
    await admin.put(f"{V}/{pid}/os-quota-sets/{pid}",
                    {"quota_set": {"volumes": 2, "gigabytes": 2}})
    net = (await member.post(f"{N}/networks", {"network": {"name": "tiny"}}))["network"]
    await member.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.78.0.0/30",
                                                  "enable_dhcp": False}})
    await admin.put(f"{N}/quotas/{pid}", {"quota": {"port": 3}})
    # a /30 has one address left after the gateway: the other ports fail after reserving
    answers = await _parallel(daemon, member, f"{N}/ports",
                              [{"port": {"network_id": net["id"]}} for _ in range(6)])
    assert sum(1 for status, _ in answers if status == 201) == 1, answers
    detail = (await member.get(f"{N}/quotas/{pid}/details"))["quota"]
    assert detail["port"]["reserved"] == 0 and detail["port"]["used"] == 1
    answers = await _parallel(daemon, member, f"{V}/{pid}/volumes",
                              [{"volume": {"size": 1, "snapshot_id": "no-such"}}
                               for _ in range(5)])
    assert {status for status, _ in answers} == {404}
    answers = await _parallel(daemon, member, f"{V}/{pid}/volumes",
                              [{"volume": {"size": 1}} for _ in range(4)])
    assert sorted(status for status, _ in answers) == [202, 202, 413, 413]


async def test_parallel_image_creates_and_uploads_never_pass_the_image_quotas(env):
    daemon, admin, member, pid = env
    data = tiny_qcow2()
    used = (await member.get(f"/image/v2/quotas/{pid}"))["quota"]["images_used"]
    await admin.put(f"/image/v2/quotas/{pid}", {"quota": {"images": used + LIMIT}})
    answers = await _parallel(daemon, member, "/image/v2/images",
                              [{"name": f"race-{i}", "disk_format": "qcow2",
                                "container_format": "bare"} for i in range(PARALLEL)])
    images = _split(answers, {201}, 413, "limit")
    assert len(images) == LIMIT
    # bytes: room for two uploads; ten stream at once (chunked, size unknown up front)
    stored = (await member.get(f"/image/v2/quotas/{pid}"))["quota"]["bytes_used"]
    await admin.put(f"/image/v2/quotas/{pid}",
                    {"quota": {"images": 100, "bytes": stored + 2 * len(data) + 100}})

    async def chunks():
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]
            await asyncio.sleep(0)

    async def upload(image_id: str) -> str:
        try:
            await member.upload("PUT", f"/image/v2/images/{image_id}/file", chunks())
            return "ok"
        except Exception as exc:  # noqa: BLE001 - the answer is what is asserted
            return str(exc)

    results = await asyncio.gather(*(upload(img["id"]) for img in images))
    assert results.count("ok") == 2, results
    assert all("quota" in r for r in results if r != "ok"), results
    quota = (await member.get(f"/image/v2/quotas/{pid}"))["quota"]
    assert quota["bytes_used"] == stored + 2 * len(data)
    for img in images:
        await member.delete(f"/image/v2/images/{img['id']}")


async def _puts(daemon, member, path: str, bodies: list[bytes],
                chunked: bool = False) -> list[int]:
    gate = asyncio.Event()

    async def stream(body: bytes):
        for i in range(0, len(body), 100):
            yield body[i:i + 100]
            await asyncio.sleep(0)

    async def one(i: int, body: bytes) -> int:
        await gate.wait()
        status, _ = await raw("PUT", f"{daemon.url}{path}/o-{i}", token=member.token,
                              data=stream(body) if chunked else body, timeout=60)
        return status

    tasks = [asyncio.create_task(one(i, b)) for i, b in enumerate(bodies)]
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*tasks)


async def test_parallel_object_puts_never_pass_the_swift_container_quotas(env):
    require("object")
    daemon, admin, member, pid = env
    base = f"/swift/v1/AUTH_{pid}"
    status, _ = await raw("PUT", f"{daemon.url}{base}/counted", token=member.token,
                          headers={"X-Container-Meta-Quota-Count": str(LIMIT)})
    assert status in (201, 202), status
    statuses = await _puts(daemon, member, f"{base}/counted", [b"x" * 100] * PARALLEL)
    assert sorted(set(statuses)) == [201, 413] and statuses.count(201) == LIMIT, statuses
    status, _ = await raw("PUT", f"{daemon.url}{base}/sized", token=member.token,
                          headers={"X-Container-Meta-Quota-Bytes": str(3 * 1000)})
    # chunked bodies: the size is known only at the end of each upload
    statuses = await _puts(daemon, member, f"{base}/sized", [b"y" * 1000] * PARALLEL,
                           chunked=True)
    assert statuses.count(201) == 3 and statuses.count(413) == PARALLEL - 3, statuses
    for name, count in (("counted", LIMIT), ("sized", 3)):
        async with aiohttp.ClientSession() as http:
            async with http.head(f"{daemon.url}{base}/{name}",
                                 headers={"X-Auth-Token": member.token}) as r:
                assert int(r.headers["X-Container-Object-Count"]) == count


async def test_parallel_key_pairs_of_one_name_and_servers_joining_one_group(env):
    """Check-then-save held under concurrency: of 25 key pairs of one name exactly one is
    created (the others 409) and it is the one whose private key was handed out; 8 servers
    created at once into one server group are all its members."""
    daemon, admin, member, pid = env
    answers = await _parallel(daemon, member, f"{C}/os-keypairs",
                              [{"keypair": {"name": "same"}} for _ in range(PARALLEL)])
    made = _split(answers, {200, 201}, 409, "already exists")
    assert len(made) == 1
    kept = (await member.get(f"{C}/os-keypairs/same", headers=NOVA))["keypair"]
    assert kept["public_key"] == made[0]["keypair"]["public_key"]
    await member.delete(f"{C}/os-keypairs/same", headers=NOVA)

    image = await upload_image(member, "group-boot", tiny_qcow2())
    group = (await member.post(f"{C}/os-server-groups", {"server_group": {
        "name": "g", "policies": ["soft-affinity"]}}, headers=NOVA))["server_group"]
    answers = await _parallel(daemon, member, f"{C}/servers", [
        {"server": {"imageRef": image["id"], "flavorRef": "1", "networks": "none",
                    "name": f"grp-{i}"}, "os:scheduler_hints": {"group": group["id"]}}
        for i in range(8)])
    created = _split(answers, {202}, 403, "Quota exceeded")
    assert len(created) == 8
    shown = (await member.get(f"{C}/os-server-groups/{group['id']}", headers=NOVA))
    assert sorted(shown["server_group"]["members"]) == sorted(c["server"]["id"] for c in created)
    for c in created:
        await member.delete(f"{C}/servers/{c['server']['id']}", headers=NOVA)

    async def gone():
        return not (await member.get(f"{C}/servers", headers=NOVA))["servers"]
    await wait_for(gone, timeout=60)


async def test_parallel_creates_of_one_name_make_one(env):
    """Users, projects, roles, domains and flavors (admin) and application credentials
    (member) have unique names: 25 parallel creates of one name make exactly one, 24 get 409."""
    daemon, admin, member, pid = env
    I = "/identity/v3"
    cases = [
        (admin, f"{I}/users", {"user": {"name": "twin", "password": "pw-Twin-123"}}),
        (admin, f"{I}/projects", {"project": {"name": "twin"}}),
        (admin, f"{I}/roles", {"role": {"name": "twin"}}),
        (admin, f"{I}/domains", {"domain": {"name": "twin"}}),
        (admin, f"{C}/flavors", {"flavor": {"name": "twin", "ram": 64, "vcpus": 1, "disk": 1}}),
    ]
    for who, path, body in cases:
        answers = await _parallel(daemon, who, path, [body] * PARALLEL)
        assert len(_split(answers, {200, 201}, 409, "")) == 1, (path, answers[:3])
    me = (await member.get(f"{I}/auth/tokens", headers={"X-Subject-Token": member.token}))
    user_id = me["token"]["user"]["id"]
    answers = await _parallel(daemon, member, f"{I}/users/{user_id}/application_credentials",
                              [{"application_credential": {"name": "twin"}}] * PARALLEL)
    assert len(_split(answers, {201}, 409, "Duplicate entry")) == 1
