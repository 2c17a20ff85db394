"""Servers over libvirt test:///default: create → ACTIVE, shapes, list filters and paging,
the action state machine (incl. 409 on a conflicting action), delete → nothing left."""
import asyncio
import base64

import pytest

from appliance.errors import BadRequest, Conflict, Forbidden, NotFound
from tests.api.compute.conftest import manager_of, wait_status
from tests.compute_support import TEST_IMAGE_ID
from tests.daemon import wait_for

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}


async def boot(nova, name="vm", flavor="1", **extra):
    body = {"server": {"name": name, "imageRef": TEST_IMAGE_ID, "flavorRef": flavor,
                       "min_count": 1, "max_count": 1, **extra}}
    created = (await nova.post(f"{C}/servers", body, headers=H))["server"]
    assert created["id"] and created["adminPass"]
    return await wait_status(nova, created["id"], "ACTIVE", "ERROR")


async def action(nova, sid, body):
    return await nova.post(f"{C}/servers/{sid}/action", body, headers=H)


async def test_create_answers_202_build_then_active_with_nova_shape(nova, compute_daemon):
    body = {"server": {"name": "shape", "imageRef": TEST_IMAGE_ID, "flavorRef": "1",
                       "metadata": {"a": "b"}, "networks": "auto",
                       "block_device_mapping_v2": [{"uuid": TEST_IMAGE_ID, "boot_index": 0,
                                                    "source_type": "image",
                                                    "destination_type": "local",
                                                    "delete_on_termination": True}]}}
    created = (await nova.post(f"{C}/servers", body, headers=H))["server"]
    first = (await nova.get(f"{C}/servers/{created['id']}", headers=H))["server"]
    assert first["status"] in ("BUILD", "ACTIVE")
    s = await wait_status(nova, created["id"], "ACTIVE")
    assert s["image"]["id"] == TEST_IMAGE_ID
    assert s["flavor"] == {"vcpus": 1, "ram": 128, "disk": 1, "ephemeral": 0, "swap": 0,
                           "original_name": "m1.tiny", "extra_specs": {}}
    assert s["addresses"] == {} and s["security_groups"] == [{"name": "default"}]
    assert s["OS-EXT-STS:vm_state"] == "active" and s["OS-EXT-STS:task_state"] is None
    assert s["OS-EXT-STS:power_state"] == 1 and s["metadata"] == {"a": "b"}
    assert s["locked"] is False and s["tags"] == [] and "fault" not in s
    old = (await nova.get(f"{C}/servers/{s['id']}"))["server"]  # no header: 2.1
    assert set(old["flavor"]) == {"id", "links"} and "locked" not in old
    # the domain runs, the root disk is a qcow2 overlay of the image
    manager = manager_of(compute_daemon)
    assert await manager.driver.state(s["id"]) == "running"
    disk = manager.instances_dir / s["id"] / "disk"
    assert disk.exists()


async def test_list_filters_paging_and_deleted_false(nova):
    ids = [(await boot(nova, f"web-{i}"))["id"] for i in range(3)]
    await boot(nova, "db")
    summary = (await nova.get(f"{C}/servers?name=web"))["servers"]
    assert sorted(s["name"] for s in summary) == ["web-0", "web-1", "web-2"]
    assert set(summary[0]) == {"id", "name", "links"}
    exact = (await nova.get(f"{C}/servers/detail?name=^db$&deleted=False", headers=H))["servers"]
    assert [s["name"] for s in exact] == ["db"]
    assert (await nova.get(f"{C}/servers/detail?status=SHUTOFF"))["servers"] == []
    page1 = await nova.get(f"{C}/servers/detail?limit=2")
    assert len(page1["servers"]) == 2 and page1["servers_links"][0]["rel"] == "next"
    page2 = await nova.get(f"{C}/servers/detail?limit=2&marker={page1['servers'][-1]['id']}")
    seen = {s["id"] for s in page1["servers"] + page2["servers"]}
    assert set(ids) <= seen and len(seen) == 4
    with pytest.raises(NotFound):
        await nova.get(f"{C}/servers/web-0")  # find-by-name: the by-id lookup must 404


async def test_power_actions_state_machine(nova, compute_daemon):
    s = await boot(nova, "power")
    sid = s["id"]
    await action(nova, sid, {"os-stop": None})
    s = await wait_status(nova, sid, "SHUTOFF")
    assert s["OS-EXT-STS:power_state"] == 4
    with pytest.raises(Conflict, match="vm_state stopped"):
        await action(nova, sid, {"os-stop": None})
    await action(nova, sid, {"os-start": None})
    await wait_status(nova, sid, "ACTIVE")
    for kind in ("SOFT", "HARD"):
        await action(nova, sid, {"reboot": {"type": kind}})
        await wait_status(nova, sid, "ACTIVE")
    await action(nova, sid, {"pause": None})
    assert (await wait_status(nova, sid, "PAUSED"))["OS-EXT-STS:power_state"] == 3
    await action(nova, sid, {"unpause": None})
    await wait_status(nova, sid, "ACTIVE")
    await action(nova, sid, {"suspend": None})
    assert (await wait_status(nova, sid, "SUSPENDED"))["OS-EXT-STS:power_state"] == 7
    await action(nova, sid, {"resume": None})
    await wait_status(nova, sid, "ACTIVE")


async def test_conflicting_action_while_a_task_runs_is_409(nova, compute_daemon):
    s = await boot(nova, "busy")
    manager = manager_of(compute_daemon)
    gate = asyncio.Event()
    real = manager.driver.power_off

    async def slow_power_off(uuid, graceful=True, timeout=60.0):
        await gate.wait()
        return await real(uuid, graceful=graceful, timeout=timeout)

    manager.driver.power_off = slow_power_off
    try:
        await action(nova, s["id"], {"os-stop": None})
        shown = (await nova.get(f"{C}/servers/{s['id']}"))["server"]
        assert shown["OS-EXT-STS:task_state"] == "powering-off"
        with pytest.raises(Conflict, match="task_state powering-off"):
            await action(nova, s["id"], {"reboot": {"type": "HARD"}})
        with pytest.raises(Conflict):
            await action(nova, s["id"], {"pause": None})
    finally:
        gate.set()
        manager.driver.power_off = real
    await wait_status(nova, s["id"], "SHUTOFF")


async def test_resize_confirm_and_revert(nova, compute_daemon):
    s = await boot(nova, "grow")
    big = (await nova.post(f"{C}/flavors", {"flavor": {"name": "m1.big", "ram": 256,
                                                        "vcpus": 2, "disk": 2, "id": None}}))["flavor"]
    manager = manager_of(compute_daemon)
    await action(nova, s["id"], {"resize": {"flavorRef": big["id"]}})
    r = await wait_status(nova, s["id"], "VERIFY_RESIZE", "ERROR")
    assert r["status"] == "VERIFY_RESIZE", r
    assert r["flavor"]["vcpus"] == 2 and r["flavor"]["ram"] == 256
    inst = manager.instances.require(s["id"])
    assert inst.old_claim and inst.claim.vcpus == 2
    await action(nova, s["id"], {"confirmResize": None})
    await wait_status(nova, s["id"], "ACTIVE")
    assert manager.instances.require(s["id"]).old_claim is None
    # a flavor the host cannot hold: the resize fails, the instance keeps running as it was
    await action(nova, s["id"], {"resize": {"flavorRef": "5"}})
    await wait_for(lambda: manager.instances.require(s["id"]).task_state is None, 10)
    failed = manager.instances.require(s["id"])
    assert failed.status == "ACTIVE" and "RamFilter" in failed.fault.message
    assert failed.claim.ram_mb == 256 and failed.old_claim is None
    mid = (await nova.post(f"{C}/flavors", {"flavor": {"name": "m1.mid", "ram": 192,
                                                        "vcpus": 1, "disk": 2, "id": None}}))["flavor"]
    await action(nova, s["id"], {"resize": {"flavorRef": mid["id"]}})
    await wait_status(nova, s["id"], "VERIFY_RESIZE")
    # reverting grows the server back to m1.big: the quota must hold that too
    pid = nova.session.project_id
    await nova.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"ram": 200}})
    with pytest.raises(Forbidden, match="Quota exceeded for ram"):
        await action(nova, s["id"], {"revertResize": None})
    await nova.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"ram": 256}})
    await action(nova, s["id"], {"revertResize": None})
    r = await wait_status(nova, s["id"], "ACTIVE")
    assert r["flavor"]["original_name"] == "m1.big"
    inst = manager.instances.require(s["id"])
    assert inst.claim.ram_mb == 256 and inst.old_claim is None


async def test_rebuild_rescue_snapshot_lock_console(nova, compute_daemon):
    s = await boot(nova, "misc", key_name=None)
    sid = s["id"]
    await action(nova, sid, {"rebuild": {"imageRef": TEST_IMAGE_ID, "name": "misc2"}})
    r = await wait_status(nova, sid, "ACTIVE")
    assert r["name"] == "misc2"
    rescue = await action(nova, sid, {"rescue": None})
    assert rescue["adminPass"]
    await wait_status(nova, sid, "RESCUE")
    await action(nova, sid, {"unrescue": None})
    await wait_status(nova, sid, "ACTIVE")
    snap = await action(nova, sid, {"createImage": {"name": "snap1"}})
    image = await nova.get(f"/image/v2/images/{snap['image_id']}")
    assert image["name"] == "snap1" and image["status"] == "active"
    assert image["image_type"] == "snapshot" and image["instance_uuid"] == sid
    assert image["visibility"] == "private" and image["disk_format"] == "qcow2"
    # the snapshot boots
    s2 = await boot(nova, "from-snap", imageRef=snap["image_id"])
    assert s2["status"] == "ACTIVE"
    out = await action(nova, sid, {"os-getConsoleOutput": {"length": 10}})
    assert out["output"] == ""  # test:///default never prints; real guests: integration
    url = await nova.post(f"{C}/servers/{sid}/remote-consoles",
                          {"remote_console": {"protocol": "serial", "type": "serial"}}, headers=H)
    assert url["remote_console"]["url"].startswith("ws://")
    assert "/compute/console?token=" in url["remote_console"]["url"]
    await action(nova, sid, {"lock": None})
    assert (await nova.get(f"{C}/servers/{sid}", headers=H))["server"]["locked"] is True
    await action(nova, sid, {"unlock": None})


async def test_config_drive_written_with_key_and_user_data(nova, compute_daemon):
    kp = (await nova.post(f"{C}/os-keypairs", {"keypair": {"name": "kd"}}))["keypair"]
    ud = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    s = await boot(nova, "cd", key_name="kd", user_data=ud, config_drive=True)
    assert s["status"] == "ACTIVE" and s["key_name"] == "kd"
    manager = manager_of(compute_daemon)
    iso = (manager.instances_dir / s["id"] / "disk.config").read_bytes()
    assert kp["public_key"].encode() in iso and b"echo hi" in iso
    # As in Nova: no drive unless asked for (the metadata service serves the same documents).
    plain = await boot(nova, "nocd", key_name="kd", user_data=ud)
    assert not (manager.instances_dir / plain["id"] / "disk.config").exists()
    content = compute_daemon.appliance.ctx.components.compute.instance_metadata(plain["id"])
    assert content.public_keys == {"kd": kp["public_key"]} and content.user_data == b"#!/bin/sh\necho hi\n"
    with pytest.raises(BadRequest, match="key_name"):
        await boot(nova, "nokey", key_name="missing")


async def test_delete_leaves_no_domain_no_disk_no_claim(nova, compute_daemon):
    s = await boot(nova, "gone")
    manager = manager_of(compute_daemon)
    assert manager.scheduler.claim_count() == 1
    await nova.delete(f"{C}/servers/{s['id']}")

    async def gone():
        try:
            await nova.get(f"{C}/servers/{s['id']}")
        except NotFound:
            return True
    await wait_for(gone, timeout=10)
    uuids = {d.uuid for d in await manager.driver.list_domains()}
    assert s["id"] not in uuids
    assert not (manager.instances_dir / s["id"]).exists()
    assert manager.scheduler.claim_count() == 0
    assert manager.tasks.list() == []


async def test_delete_during_build_wins(nova, compute_daemon):
    manager = manager_of(compute_daemon)
    gate = asyncio.Event()
    real = manager.driver.spawn

    async def slow_spawn(spec):
        await gate.wait()
        return await real(spec)

    manager.driver.spawn = slow_spawn
    try:
        body = {"server": {"name": "racy", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}
        sid = (await nova.post(f"{C}/servers", body))["server"]["id"]
        await wait_for(lambda: manager.instances.require(sid).task_state == "spawning", 10)
        await nova.delete(f"{C}/servers/{sid}")
        gate.set()
        await manager.wait_idle()
    finally:
        manager.driver.spawn = real
    assert manager.instances.get(sid) is None
    assert sid not in {d.uuid for d in await manager.driver.list_domains()}
    assert manager.scheduler.claim_count() == 0


async def test_quota_instances_enforced_403(nova, compute_daemon):
    pid = nova.session.project_id
    await nova.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"instances": 1}})
    q = (await nova.get(f"{C}/os-quota-sets/{pid}"))["quota_set"]
    assert q["instances"] == 1
    await boot(nova, "one")
    with pytest.raises(Forbidden, match="Quota exceeded for instances"):
        await boot(nova, "two")
    limits = (await nova.get(f"{C}/limits"))["limits"]["absolute"]
    assert limits["maxTotalInstances"] == 1 and limits["totalInstancesUsed"] == 1
    detail = (await nova.get(f"{C}/os-quota-sets/{pid}/detail"))["quota_set"]
    assert detail["instances"] == {"limit": 1, "in_use": 1, "reserved": 0}


async def test_quota_gives_what_fits_between_min_and_max_count(nova, compute_daemon):
    """Nova's rule: a max_count the quota refuses still creates as many as fit when that is
    at least min_count; fewer than min_count fit → 403 and nothing is created."""
    pid = nova.session.project_id
    await nova.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"instances": 3}})
    body = {"server": {"name": "fit", "imageRef": TEST_IMAGE_ID, "flavorRef": "1",
                       "min_count": 4, "max_count": 6}}
    with pytest.raises(Forbidden, match="Quota exceeded for instances"):
        await nova.post(f"{C}/servers", body, headers=H)
    assert (await nova.get(f"{C}/servers", headers=H))["servers"] == []
    body["server"].update(min_count=2, max_count=6, return_reservation_id=True)
    rid = (await nova.post(f"{C}/servers", body, headers=H))["reservation_id"]
    made = (await nova.get(f"{C}/servers?reservation_id={rid}", headers=H))["servers"]
    assert sorted(s["name"] for s in made) == ["fit-1", "fit-2", "fit-3"]
    detail = (await nova.get(f"{C}/os-quota-sets/{pid}/detail"))["quota_set"]
    assert detail["instances"] == {"limit": 3, "in_use": 3, "reserved": 0}


async def test_hypervisors_zones_groups_versions(nova, compute_daemon):
    await boot(nova, "hv")
    hvs = (await nova.get(f"{C}/os-hypervisors/detail", headers=H))["hypervisors"]
    assert len(hvs) == 1 and hvs[0]["hypervisor_type"] == "TEST"
    assert hvs[0]["vcpus_used"] == 1 and hvs[0]["running_vms"] == 1
    stats = (await nova.get(f"{C}/os-hypervisors/statistics"))["hypervisor_statistics"]
    assert stats["count"] == 1 and stats["memory_mb_used"] >= 128
    shown = (await nova.get(f"{C}/os-hypervisors/{hvs[0]['id']}"))["hypervisor"]
    assert shown["hypervisor_hostname"] == hvs[0]["hypervisor_hostname"]
    az = (await nova.get(f"{C}/os-availability-zone"))["availabilityZoneInfo"]
    assert az[0]["zoneName"] == "nova"
    g = (await nova.post(f"{C}/os-server-groups",
                         {"server_group": {"name": "g", "policies": ["affinity"]}}))["server_group"]
    assert (await nova.get(f"{C}/os-server-groups"))["server_groups"][0]["id"] == g["id"]
    await nova.delete(f"{C}/os-server-groups/{g['id']}")
    v = await nova.get("/compute/v2.1")
    assert v["version"]["version"] == "2.60" and v["version"]["links"][0]["rel"] == "self"
    listed = {v["id"]: v for v in (await nova.get("/compute"))["versions"]}
    assert listed["v2.1"]["status"] == "CURRENT" and listed["v2.0"]["status"] == "SUPPORTED"
    assert (await nova.get("/compute/v2"))["version"]["id"] == "v2.0"


async def test_guest_power_off_reaches_state_via_lifecycle_event(nova, compute_daemon):
    import libvirt
    s = await boot(nova, "selfoff")
    conn = libvirt.open("test:///default")
    try:
        conn.lookupByUUIDString(s["id"]).destroy()  # as if the guest powered itself off
    finally:
        conn.close()
    r = await wait_status(nova, s["id"], "SHUTOFF", timeout=5)
    assert r["OS-EXT-STS:power_state"] == 4


async def test_member_sees_only_own_servers_and_locked_blocks_member(nova, compute_daemon):
    from tests.api.compute.test_flavors_keypairs import member_client
    admin_vm = await boot(nova, "admins")
    alice = await member_client(compute_daemon, nova, "alice2")
    try:
        mine = await boot(alice, "alices")
        names = [s["name"] for s in (await alice.get(f"{C}/servers"))["servers"]]
        assert names == ["alices"]
        with pytest.raises(NotFound):
            await alice.get(f"{C}/servers/{admin_vm['id']}")
        await action(nova, mine["id"], {"lock": None})
        with pytest.raises(Conflict, match="locked"):
            await action(alice, mine["id"], {"os-stop": None})
        with pytest.raises(Forbidden):
            await alice.get(f"{C}/os-hypervisors")
    finally:
        await alice.close()
