"""Cinder v3: create (empty, from image, snapshot, volume), extend, snapshots, revert, delete,
the attach status machine, quotas, and discovery."""
from __future__ import annotations

import json
import subprocess

import aiohttp
import pytest

from appliance.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from tests.api.images.conftest import create_image, upload
from tests.api.volumes.conftest import (
    action,
    create_volume,
    make_qcow2,
    needs_qemu_img,
    vpath,
    wait_status,
)

pytestmark = needs_qemu_img
GiB = 1 << 30


def qemu_info(path) -> dict:
    out = subprocess.run(["qemu-img", "info", "-U", "-f", "qcow2", "--output=json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def files(daemon):
    return daemon.appliance.ctx.components.volume.service.files


async def test_discovery_with_and_without_project(daemon, admin):
    async with aiohttp.ClientSession() as http:
        for path in ("/volume/", "/volume", "/volume/v3/",
                     f"/volume/v3/{admin.session.project_id}"):
            async with http.get(daemon.url + path) as r:
                # the unversioned root is Cinder's 300 Multiple Choices
                assert r.status == (300 if path in ("/volume/", "/volume") else 200), path
                version = (await r.json())["versions"][0]
                assert version["id"] == "v3.0" and version["min_version"] == "3.0"
                assert version["links"][0]["href"] == daemon.url + "/volume/v3/"
    catalog = {c["type"]: c for c in admin.session.catalog}
    for kind in ("volumev3", "block-storage"):
        assert catalog[kind]["endpoints"][0]["url"].endswith(
            f"/volume/v3/{admin.session.project_id}")


async def test_create_empty_volume_and_delete(daemon, admin):
    vol = await create_volume(admin, name="empty", size=1)
    assert vol["size"] == 1 and vol["bootable"] == "false" and vol["attachments"] == []
    info = qemu_info(files(daemon).path(vol["id"]))
    assert info["virtual-size"] == GiB and "backing-filename" not in info
    listed = await admin.get(vpath(admin, "/volumes/detail?name=empty"))
    assert [v["id"] for v in listed["volumes"]] == [vol["id"]]
    summary = await admin.get(vpath(admin, "/volumes"))
    assert set(summary["volumes"][0]) == {"id", "name", "links"}
    await admin.delete(vpath(admin, f"/volumes/{vol['id']}"))
    for _ in range(200):
        try:
            await admin.get(vpath(admin, f"/volumes/{vol['id']}"))
        except NotFound:
            break
        import asyncio
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("volume not deleted")
    assert not files(daemon).exists(vol["id"])


async def test_create_from_image_is_an_overlay_over_a_cached_base(daemon, admin, tmp_path):
    disk = make_qcow2(tmp_path / "src.qcow2", "64M", b"boot me\n" * 64)
    img = await create_image(admin, "vol-src", min_disk=1, hw_disk_bus="virtio")
    await upload(admin, img["id"], disk)
    vol = await create_volume(admin, name="from-image", imageRef=img["id"])  # size from image
    assert vol["size"] == 1 and vol["bootable"] == "true"
    assert vol["volume_image_metadata"]["image_id"] == img["id"]
    assert vol["volume_image_metadata"]["hw_disk_bus"] == "virtio"
    info = qemu_info(files(daemon).path(vol["id"]))
    base = files(daemon).base_path(img["id"])
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "raw"
    assert info["virtual-size"] == GiB
    assert base.read_bytes().startswith(b"boot me\n")
    with pytest.raises(BadRequest):  # an image the project cannot see
        await create_volume(admin, imageRef="00000000-0000-4000-8000-000000000000")


async def test_volume_from_a_stored_image_qemu_cannot_open_goes_to_error(daemon, admin,
                                                                          tmp_path):
    """An image stored before uploads had to open in qemu (its file now holds an L1 table
    beyond qemu's limit) gives a volume in error that says why, and no cached base."""
    from tests.api.images.test_hostile_images import qcow2_beyond_qemu
    disk = make_qcow2(tmp_path / "src.qcow2", "64M")
    img = await create_image(admin, "turned-hostile")
    await upload(admin, img["id"], disk)
    images = daemon.appliance.ctx.components.image.service
    hostile = qcow2_beyond_qemu(tmp_path, 36, 1 << 24, "stored-l1")
    images.blobs.path(img["id"]).write_bytes(hostile.read_bytes())
    vol = (await admin.post(vpath(admin, "/volumes"), {"volume": {
        "size": 1, "imageRef": img["id"]}}))["volume"]
    vol = await wait_status(admin, "volumes", vol["id"], "available", "error")
    assert vol["status"] == "error"
    assert "qemu-img info failed" in vol["monostack_last_error"]
    assert "L1 table too large" in vol["monostack_last_error"]
    assert not files(daemon).base_path(img["id"]).exists()


async def test_snapshot_revert_clone_and_extend(daemon, admin):
    vol = await create_volume(admin, name="snapme", size=1)
    snap = (await admin.post(vpath(admin, "/snapshots"),
                             {"snapshot": {"volume_id": vol["id"], "name": "s1",
                                           "description": None, "metadata": None}}))["snapshot"]
    assert snap["status"] == "creating" and snap["size"] == 1
    snap = await wait_status(admin, "snapshots", snap["id"], "available", "error")
    assert snap["status"] == "available"
    assert snap["id"] in [s["name"] for s in qemu_info(files(daemon).path(vol["id"]))["snapshots"]]
    listed = await admin.get(vpath(admin, "/snapshots/detail"))
    assert [s["id"] for s in listed["snapshots"]] == [snap["id"]]

    # a volume with snapshots cannot be deleted
    with pytest.raises(BadRequest, match="snapshot"):
        await admin.delete(vpath(admin, f"/volumes/{vol['id']}"))

    # from snapshot, and a clone of the volume: flattened, independent copies
    from_snap = await create_volume(admin, name="from-snap", snapshot_id=snap["id"], size=None)
    clone = await create_volume(admin, name="clone", source_volid=vol["id"], size=2)
    assert from_snap["size"] == 1 and clone["size"] == 2
    for v in (from_snap, clone):
        info = qemu_info(files(daemon).path(v["id"]))
        assert "backing-filename" not in info and info["virtual-size"] == v["size"] * GiB

    # revert to the latest snapshot, then extend
    await action(admin, vol["id"], "revert", {"snapshot_id": snap["id"]})
    await wait_status(admin, "volumes", vol["id"], "available")
    with pytest.raises(BadRequest):
        await action(admin, vol["id"], "os-extend", {"new_size": 1})
    await action(admin, vol["id"], "os-extend", {"new_size": 3})
    extended = await wait_status(admin, "volumes", vol["id"], "available")
    assert extended["size"] == 3
    assert qemu_info(files(daemon).path(vol["id"]))["virtual-size"] == 3 * GiB
    with pytest.raises(BadRequest, match="size"):  # sizes differ now
        await action(admin, vol["id"], "revert", {"snapshot_id": snap["id"]})

    await admin.delete(vpath(admin, f"/snapshots/{snap['id']}"))
    for _ in range(200):
        if not (await admin.get(vpath(admin, "/snapshots")))["snapshots"]:
            break
        import asyncio
        await asyncio.sleep(0.05)
    assert snap["id"] not in [s["name"] for s in
                              qemu_info(files(daemon).path(vol["id"])).get("snapshots", [])]
    await admin.delete(vpath(admin, f"/volumes/{vol['id']}"))


async def test_attach_status_machine_and_delete_refused_while_in_use(daemon, admin):
    vol = await create_volume(admin, name="attachme")
    seam = daemon.appliance.ctx.components.volume
    pid = admin.session.project_id
    target = await seam.volume_for_attach(vol["id"], pid)
    assert target.path == files(daemon).path(vol["id"]) and target.format == "qcow2"
    assert (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]["status"] == "attaching"
    from appliance.errors import Conflict
    with pytest.raises(Conflict):
        await seam.volume_for_attach(vol["id"], pid)
    with pytest.raises(NotFound):
        await seam.volume_for_attach(vol["id"], "another-project")
    await seam.mark_attached(vol["id"], "server-1", "/dev/vdb")
    shown = (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]
    assert shown["status"] == "in-use"
    assert [(a["server_id"], a["device"]) for a in shown["attachments"]] == [("server-1", "/dev/vdb")]
    with pytest.raises(BadRequest, match="attached|in-use"):
        await admin.delete(vpath(admin, f"/volumes/{vol['id']}"))
    with pytest.raises(BadRequest, match="detach"):
        await admin.post(vpath(admin, "/snapshots"), {"snapshot": {"volume_id": vol["id"]}})
    await seam.begin_detaching(vol["id"])
    assert (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]["status"] == "detaching"
    await seam.mark_detached(vol["id"], "server-1")
    shown = (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]
    assert shown["status"] == "available" and shown["attachments"] == []
    await seam.mark_detached(vol["id"], "server-1")  # idempotent

    # the Cinder actions drive the same machine
    await action(admin, vol["id"], "os-reserve")
    await action(admin, vol["id"], "os-unreserve")
    await action(admin, vol["id"], "os-reserve")
    await action(admin, vol["id"], "os-attach", {"instance_uuid": "server-2", "mountpoint": "/dev/vdc"})
    shown = (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]
    assert shown["status"] == "in-use"
    conn = await action(admin, vol["id"], "os-initialize_connection", {"connector": {}})
    assert conn["connection_info"]["data"]["device_path"] == str(files(daemon).path(vol["id"]))
    await action(admin, vol["id"], "os-begin_detaching")
    await action(admin, vol["id"], "os-roll_detaching")
    await action(admin, vol["id"], "os-detach",
                 {"attachment_id": shown["attachments"][0]["attachment_id"]})
    assert (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]["status"] == "available"
    await action(admin, vol["id"], "os-set_bootable", {"bootable": True})
    assert (await admin.get(vpath(admin, f"/volumes/{vol['id']}")))["volume"]["bootable"] == "true"
    with pytest.raises(BadRequest):
        await action(admin, vol["id"], "os-frobnicate", {})


async def test_upload_volume_to_image(daemon, admin):
    vol = await create_volume(admin, name="to-image")
    answer = await action(admin, vol["id"], "os-volume_upload_image",
                          {"image_name": "from-volume", "disk_format": "qcow2",
                           "container_format": "bare", "force": False})
    image_id = answer["os-volume_upload_image"]["image_id"]
    await wait_status(admin, "volumes", vol["id"], "available")
    import asyncio
    for _ in range(200):
        img = await admin.get(f"/image/v2/images/{image_id}")
        if img["status"] == "active":
            break
        await asyncio.sleep(0.05)
    assert img["status"] == "active" and img["disk_format"] == "qcow2"
    assert img["virtual_size"] == GiB
    leftovers = [p.name for p in files(daemon).root.iterdir() if p.name.startswith(".")]
    assert leftovers == []


async def test_quotas_limits_and_types(daemon, admin):
    from tests.api.images.conftest import Projects
    projects = Projects(daemon, admin)
    try:
        bob = await projects.member("vol-bob")
        pid = bob.session.project_id
        with pytest.raises(Forbidden):
            await bob.put(vpath(bob, f"/os-quota-sets/{pid}"), {"quota_set": {"volumes": 1}})
        await admin.put(vpath(admin, f"/os-quota-sets/{pid}"),
                        {"quota_set": {"volumes": 1, "gigabytes": 2}})
        qs = (await bob.get(vpath(bob, f"/os-quota-sets/{pid}?usage=True")))["quota_set"]
        assert qs["volumes"] == {"limit": 1, "in_use": 0, "reserved": 0, "allocated": 0}
        with pytest.raises(PayloadTooLarge):
            await create_volume(bob, size=3)
        vol = await create_volume(bob, size=1)
        with pytest.raises(PayloadTooLarge):
            await create_volume(bob, size=1)
        with pytest.raises(PayloadTooLarge):
            await action(bob, vol["id"], "os-extend", {"new_size": 3})
        lim = (await bob.get(vpath(bob, "/limits")))["limits"]["absolute"]
        assert (lim["maxTotalVolumes"], lim["totalVolumesUsed"], lim["totalGigabytesUsed"]) == (1, 1, 1)
        types = (await bob.get(vpath(bob, "/types")))["volume_types"]
        assert [t["name"] for t in types] == ["default"]
        assert (await bob.get(vpath(bob, "/types/default")))["volume_type"]["name"] == "default"
        # another project's volumes and paths are out of reach
        with pytest.raises(NotFound):
            await bob.get(f"/volume/v3/{pid}/volumes/{(await create_volume(admin))['id']}")
        with pytest.raises(Forbidden):
            await bob.get(f"/volume/v3/{admin.session.project_id}/volumes")
    finally:
        for c in projects.clients:
            await c.close()


async def test_listing_paging_links_only_when_more(daemon, admin):
    ids = [(await create_volume(admin, name=f"p{i}", wait=False))["id"] for i in range(3)]
    for vid in ids:
        await wait_status(admin, "volumes", vid, "available")
    page = await admin.get(vpath(admin, "/volumes/detail?limit=2&sort=name:asc"))
    assert [v["name"] for v in page["volumes"]] == ["p0", "p1"]
    nxt = page["volumes_links"][0]["href"]
    rest = await admin.get(nxt.replace(daemon.url, ""))
    assert [v["name"] for v in rest["volumes"]] == ["p2"] and "volumes_links" not in rest
    assert "volumes_links" not in await admin.get(vpath(admin, "/volumes/detail"))


async def test_restart_settles_interrupted_volumes(tmp_path):
    from tests.api.volumes.conftest import COMPONENTS
    from tests.daemon import InProcessDaemon, write_config
    _, config = write_config(tmp_path / "d", components=["images", "volumes"])
    async with InProcessDaemon(config, components=COMPONENTS) as d:
        admin = await d.admin_client()
        ok = await create_volume(admin, name="ok")
        service = d.appliance.ctx.components.volume.service
        rec = service.volumes.require(ok["id"])
        rec.status = "extending"
        await service.volumes.save(rec)
        from appliance.volumes.records import Volume
        await service.volumes.save(Volume(id="11111111-1111-4111-8111-111111111111",
                                          project_id=admin.session.project_id, size=1,
                                          status="creating", created_at="x"))
        await admin.close()
    async with InProcessDaemon(config, components=COMPONENTS) as d:
        admin = await d.admin_client()
        assert (await admin.get(vpath(admin, f"/volumes/{ok['id']}")))["volume"]["status"] == "available"
        lost = (await admin.get(vpath(admin, "/volumes/11111111-1111-4111-8111-111111111111")))["volume"]
        assert lost["status"] == "error"
        await admin.close()


async def test_microversions_are_negotiated_and_shape_the_answer(daemon, admin):
    """3.0 answers carry no field of a later microversion; every answer names its version;
    a version outside 3.0–3.70 is a 406."""
    vol = await create_volume(admin, name="mv")
    url = daemon.url + vpath(admin, f"/volumes/{vol['id']}")
    token = {"X-Auth-Token": admin.session.token}
    later = {"volume_type_id", "consumes_quota", "shared_targets", "service_uuid", "backup_id",
             "group_id", "cluster_name"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=token) as r:
            assert r.headers["OpenStack-API-Version"] == "volume 3.0"
            assert not later & set((await r.json())["volume"])
        async with http.get(url, headers={**token, "OpenStack-API-Version": "volume 3.63"}) as r:
            assert r.headers["OpenStack-API-Version"] == "volume 3.63"
            body = (await r.json())["volume"]
            assert {"volume_type_id", "shared_targets", "backup_id", "group_id"} <= set(body)
            assert "consumes_quota" not in body
        async with http.get(url, headers={**token, "OpenStack-API-Version": "volume latest"}) as r:
            assert r.headers["OpenStack-API-Version"] == "volume 3.70"
            assert (await r.json())["volume"]["consumes_quota"] is True
        # another service's version in the same header changes nothing here
        async with http.get(url, headers={**token,
                                          "OpenStack-API-Version": "compute 2.60"}) as r:
            assert r.headers["OpenStack-API-Version"] == "volume 3.0"
        for bad, status in (("volume 3.71", 406), ("volume 2.0", 406), ("volume x.y", 400)):
            async with http.get(url, headers={**token, "OpenStack-API-Version": bad}) as r:
                assert r.status == status, bad
