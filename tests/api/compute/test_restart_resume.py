"""compute.resume_guests_on_start over libvirt's test driver: after a simulated host reboot
(daemon stopped, domains shut off behind its back) a restart powers ACTIVE instances on again —
also one whose domain was saved to a managed-save image on the way down (what libvirt-guests
does by default) — and leaves stopped instances stopped; with the option off nothing is started
and the records follow libvirt (SHUTOFF).

test:///default keeps its domains only while some connection is open: the test holds one
across the restart, as libvirtd does on a real host.
"""
from __future__ import annotations

import libvirt
import pytest

from tests.api.compute.conftest import make_daemon, manager_of, wait_status
from tests.compute_support import TEST_IMAGE_ID as FAKE_IMAGE_ID

C = "/compute/v2.1"


async def boot(client, name: str) -> str:
    sid = (await client.post(f"{C}/servers", {"server": {
        "name": name, "imageRef": FAKE_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
    await wait_status(client, sid, "ACTIVE")
    return sid


@pytest.mark.parametrize("resume", [True, False])
async def test_restart_after_host_reboot_resumes_only_active_instances(tmp_path, resume):
    held = libvirt.open("test:///default")
    try:
        async with await make_daemon(tmp_path) as daemon:
            client = await daemon.admin_client()
            try:
                running = await boot(client, "was-running")
                saved = await boot(client, "was-saved")
                stopped = await boot(client, "was-stopped")
                await client.post(f"{C}/servers/{stopped}/action", {"os-stop": None})
                await wait_status(client, stopped, "SHUTOFF")
                await manager_of(daemon).wait_idle()
            finally:
                await client.close()
        # the host goes down: qemu processes gone, one guest saved by libvirt-guests
        held.lookupByUUIDString(running).destroy()
        held.lookupByUUIDString(saved).managedSave(0)
        assert not held.lookupByUUIDString(saved).isActive()

        async with await make_daemon(tmp_path, {"resume_guests_on_start": resume}) as daemon:
            client = await daemon.admin_client()
            try:
                expected = "ACTIVE" if resume else "SHUTOFF"
                for sid in (running, saved):
                    s = await wait_status(client, sid, "ACTIVE", "SHUTOFF", "SUSPENDED",
                                          "ERROR")
                    assert s["status"] == expected or (not resume and sid == saved
                                                       and s["status"] == "SUSPENDED"), s
                    assert held.lookupByUUIDString(sid).isActive() == resume
                s = await wait_status(client, stopped, "ACTIVE", "SHUTOFF", "ERROR")
                assert s["status"] == "SHUTOFF"
                assert not held.lookupByUUIDString(stopped).isActive()
                for sid in (running, saved, stopped):
                    await client.delete(f"{C}/servers/{sid}")
                await manager_of(daemon).wait_idle()
            finally:
                await client.close()
    finally:
        held.close()
