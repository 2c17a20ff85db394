"""Boot from volume over test:///default with the real volume component: the root disk is the
volume's file (no local overlay); source image → destination volume builds a new volume
during the build; delete_on_termination deletes it, otherwise the volume is available again."""
import pytest

from appliance.errors import BadRequest
from tests.api.compute.conftest import manager_of, wait_status
from tests.compute_support import TEST_IMAGE_ID
from tests.daemon import wait_for

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}


def vpath(client, rest=""):
    return f"/volume/v3/{client.session.project_id}{rest}"


async def volume(nova, vid):
    return (await nova.get(vpath(nova, f"/volumes/{vid}")))["volume"]


async def volume_status(nova, vid, *wanted):
    async def check():
        v = await volume(nova, vid)
        return v if v["status"] in wanted else None
    return await wait_for(check, timeout=30, interval=0.05)


async def root_disk_of(manager, sid):
    xml = await manager.driver.domain_xml(sid)
    import xml.etree.ElementTree as ET
    for disk in ET.fromstring(xml).iter("disk"):
        if disk.find("target").get("dev") == "vda":
            return disk.find("source").get("file")


async def test_boot_from_image_onto_new_volume(nova, compute_daemon):
    manager = manager_of(compute_daemon)
    body = {"server": {"name": "bfv", "flavorRef": "1", "block_device_mapping_v2": [{
        "uuid": TEST_IMAGE_ID, "source_type": "image", "destination_type": "volume",
        "boot_index": 0, "volume_size": 1, "delete_on_termination": True}]}}
    sid = (await nova.post(f"{C}/servers", body, headers=H))["server"]["id"]
    s = await wait_status(nova, sid, "ACTIVE", "ERROR")
    assert s["status"] == "ACTIVE", s.get("fault")
    assert s["image"] == ""  # Nova shows no image for a volume-backed server
    [attached] = s["os-extended-volumes:volumes_attached"]
    assert attached["delete_on_termination"] is True
    vid = attached["id"]
    v = await volume(nova, vid)
    assert v["status"] == "in-use" and v["bootable"] in ("true", True)
    assert v["attachments"][0]["server_id"] == sid and v["attachments"][0]["device"] == "/dev/vda"
    inst = manager.instances.require(sid)
    assert inst.root_volume_id == vid and inst.claim.disk_gb == 0
    root = await root_disk_of(manager, sid)
    assert root == inst.volume_attachments[0].path and vid in root
    assert not (manager.instances_dir / sid / "disk").exists()  # no local root overlay
    with pytest.raises(BadRequest, match="root device"):
        await nova.delete(f"{C}/servers/{sid}/os-volume_attachments/{vid}")
    await nova.delete(f"{C}/servers/{sid}")
    await wait_for(lambda: manager.instances.get(sid) is None, timeout=30)

    async def volume_gone():
        vols = (await nova.get(vpath(nova, "/volumes")))["volumes"]
        return not [x for x in vols if x["id"] == vid]
    await wait_for(volume_gone, timeout=30)


async def test_boot_from_existing_volume_keeps_it_after_delete(nova, compute_daemon):
    manager = manager_of(compute_daemon)
    vol = (await nova.post(vpath(nova, "/volumes"), {"volume": {
        "name": "rootvol", "size": 1, "imageRef": TEST_IMAGE_ID}}))["volume"]
    await volume_status(nova, vol["id"], "available")
    body = {"server": {"name": "bfv2", "flavorRef": "1", "block_device_mapping_v2": [{
        "uuid": vol["id"], "source_type": "volume", "destination_type": "volume",
        "boot_index": 0}]}}
    sid = (await nova.post(f"{C}/servers", body, headers=H))["server"]["id"]
    s = await wait_status(nova, sid, "ACTIVE", "ERROR")
    assert s["status"] == "ACTIVE", s.get("fault")
    assert (await volume(nova, vol["id"]))["status"] == "in-use"
    assert vol["id"] in await root_disk_of(manager, sid)
    # the same volume cannot be a second server's root
    with pytest.raises(BadRequest):
        await nova.post(f"{C}/servers", body, headers=H)
    await nova.delete(f"{C}/servers/{sid}")
    v = await volume_status(nova, vol["id"], "available")
    assert v["attachments"] == []


async def test_boot_volume_smaller_than_image_is_400(nova, compute_daemon):
    big = (await nova.post(f"/image/v2/images", {"name": "big", "disk_format": "qcow2",
                                                  "container_format": "bare"}))
    assert big["id"]
    body = {"server": {"name": "x", "flavorRef": "1", "block_device_mapping_v2": [{
        "uuid": "00000000-0000-4000-8000-00000000dead", "source_type": "image",
        "destination_type": "volume", "boot_index": 0, "volume_size": 1}]}}
    with pytest.raises(BadRequest, match="could not be found"):
        await nova.post(f"{C}/servers", body, headers=H)
    body["server"]["block_device_mapping_v2"][0]["uuid"] = big["id"]  # queued: not active
    with pytest.raises(BadRequest, match="not active"):
        await nova.post(f"{C}/servers", body, headers=H)
