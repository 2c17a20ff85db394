"""Nova's `progress` in server bodies moves with the action where the daemon knows how far
it is: the build's steps, the resize's backup copy, the snapshot's copy. Each action is held
at one step (the next driver or image call waits on a gate) and the API is read there."""
from __future__ import annotations

import asyncio

from tests.api.compute.conftest import manager_of, wait_status
from tests.api.compute.test_servers import C, H, action, boot
from tests.compute_support import TEST_IMAGE_ID
from tests.daemon import wait_for

from appliance.compute import progress_meter as progress


async def _server(nova, sid):
    return (await nova.get(f"{C}/servers/{sid}", headers=H))["server"]


def _gate(obj, name):
    """Hold obj.name's next call until the returned event is set; `entered` once held."""
    real = getattr(obj, name)
    release, entered = asyncio.Event(), asyncio.Event()

    async def held(*args, **kwargs):
        entered.set()
        await release.wait()
        return await real(*args, **kwargs)
    setattr(obj, name, held)
    return release, entered, lambda: setattr(obj, name, real)


async def test_a_build_reports_its_step_and_ends_at_100(nova, compute_daemon):
    manager = manager_of(compute_daemon)
    release, entered, restore = _gate(manager.driver, "spawn")
    try:
        body = {"server": {"name": "prog", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}
        sid = (await nova.post(f"{C}/servers", body, headers=H))["server"]["id"]
        await asyncio.wait_for(entered.wait(), 30)
        s = await _server(nova, sid)
        assert (s["status"], s["OS-EXT-STS:task_state"]) == ("BUILD", "spawning")
        assert s["progress"] == progress.BUILD_STEPS[progress.TaskState.SPAWNING]
        listed = (await nova.get(f"{C}/servers/detail", headers=H))["servers"]
        assert [x["progress"] for x in listed if x["id"] == sid] == [s["progress"]]
        release.set()
    finally:
        restore()
        release.set()
    done = await wait_status(nova, sid, "ACTIVE", "ERROR")
    assert (done["status"], done["progress"]) == ("ACTIVE", 100)


async def test_a_resize_reports_its_backup_copy_then_a_snapshot_its_copy(nova, compute_daemon):
    s = await boot(nova, "grow")
    manager = manager_of(compute_daemon)
    big = (await nova.post(f"{C}/flavors", {"flavor": {"name": "m1.prog", "ram": 256,
                                                        "vcpus": 1, "disk": 2, "id": None}}))
    release, entered, restore = _gate(manager.build, "respawn")
    try:
        await action(nova, s["id"], {"resize": {"flavorRef": big["flavor"]["id"]}})
        await asyncio.wait_for(entered.wait(), 30)
        r = await _server(nova, s["id"])
        assert (r["status"], r["OS-EXT-STS:task_state"]) == ("RESIZE", "resize_finish")
        assert r["progress"] == progress.RESIZE_COPY[1] + 5  # the whole backup copied
        release.set()
    finally:
        restore()
        release.set()
    r = await wait_status(nova, s["id"], "VERIFY_RESIZE", "ERROR")
    assert r["status"] == "VERIFY_RESIZE" and r["progress"] == 0  # idle, not ACTIVE
    await action(nova, s["id"], {"confirmResize": None})
    await wait_status(nova, s["id"], "ACTIVE")

    release, entered, restore = _gate(manager.images, "create_image_from_file")
    try:
        # the API answers with the image's id, so only once the copy is stored: ask aside
        asked = asyncio.create_task(action(nova, s["id"], {"createImage": {"name": "prog-snap"}}))
        await asyncio.wait_for(entered.wait(), 30)
        r = await _server(nova, s["id"])
        assert r["OS-EXT-STS:task_state"] == "image_snapshot"
        assert r["progress"] == progress.SNAPSHOT_COPY[1]
        release.set()
    finally:
        restore()
        release.set()
    assert (await asyncio.wait_for(asked, 30))["image_id"]
    await wait_for(lambda: _idle(nova, s["id"]), timeout=30, interval=0.05)
    assert (await _server(nova, s["id"]))["progress"] == 100


async def _idle(nova, sid):
    s = await _server(nova, sid)
    return s if s["OS-EXT-STS:task_state"] is None else None
