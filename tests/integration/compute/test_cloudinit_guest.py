"""A real Debian guest with cloud-init configures itself under the appliance — from the
metadata service and from a config drive — with the client every real cloud image uses.

Two servers boot side by side from the same image (packaging/guest-image/build-cloudinit.sh)
on the default private network (a subnet without a router: the route to 169.254.169.254
comes from DHCP option 121): one with no config drive, so cloud-init's ds-identify sees the
"OpenStack Nova" SMBIOS product and its OpenStack datasource asks the metadata service; one
with `config_drive=True`, read by the ConfigDrive datasource. Both get the same key pair and
a user-data script. The script runs as cloud-init's last stage and prints, on the serial
console, what cloud-init did before it: the host name it set, the key it installed for the
image's default user (`debian`), and where its data came from (instance-data.json's
subplatform). Booting both at once costs one boot's wall time on a host with two cores.
"""
from __future__ import annotations

import base64
import re
import time

import pytest

from tests.daemon import InProcessDaemon, wait_for, write_config
from tests.guest_image import GuestImageBuildError
from tests.cloud_image import ensure_cloud_image
from tests.integration.realguest import (
    REAL_GUEST_MARKS,
    C,
    H,
    console_text,
    destroy_domains,
    libvirt_reachable,
    new_test_dir,
    real_config_extra,
    remove_tree,
    upload_guest_image,
    wait_status,
)

pytestmark = [*REAL_GUEST_MARKS, pytest.mark.slow]

USER_DATA = """#!/bin/sh
# runs in cloud-init's final stage: report what the earlier stages did
say() { echo "$*" >/dev/ttyS0; }
say "ci-hostname: $(hostname)"
say "ci-etc-hostname: $(cat /etc/hostname)"
say "ci-key: $(cat /home/debian/.ssh/authorized_keys)"
say "ci-source: $(grep -o '"subplatform": "[^"]*"' /run/cloud-init/instance-data.json | head -n 1)"
say "ci-user-data-ran: yes"
"""
BOOT_TIMEOUT = 1500  # TCG on a shared 2-core host: cloud-init's four stages take minutes


def proof(text: str) -> dict[str, str] | None:
    found = dict(re.findall(r"^(ci-[a-z-]+): (.*?)\r?$", text, re.M))
    return found if "ci-user-data-ran" in found else None


async def test_cloud_init_configures_from_metadata_service_and_config_drive(tmp_path):
    if not libvirt_reachable():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    try:
        image = ensure_cloud_image()
    except GuestImageBuildError as exc:
        pytest.fail(f"the cloud-init image cannot be built: {exc}")
    base = new_test_dir()
    _, config = write_config(tmp_path, components=["images", "network", "compute"],
                             extra=real_config_extra(base))
    made: list[str] = []
    try:
        async with InProcessDaemon(config) as daemon:
            client = await daemon.admin_client()
            try:
                image_id = await upload_guest_image(client, image, name="debian-cloudinit")
                flavor = (await client.post(f"{C}/flavors", {"flavor": {
                    "name": "ci", "ram": 512, "vcpus": 1, "disk": 3, "id": None}}))["flavor"]["id"]
                kp = (await client.post(f"{C}/os-keypairs", {"keypair": {"name": "ci-key"}}))["keypair"]
                user_data = base64.b64encode(USER_DATA.encode()).decode()
                t0 = time.monotonic()
                sids = {}
                for role, extra in (("md", {}), ("cd", {"config_drive": True})):
                    sids[role] = (await client.post(f"{C}/servers", {"server": {
                        "name": f"ci-{role}-guest", "imageRef": image_id, "flavorRef": flavor,
                        "key_name": "ci-key", "user_data": user_data, **extra}},
                        headers=H))["server"]["id"]
                    made.append(sids[role])
                for sid in sids.values():
                    s = await wait_status(client, sid, "ACTIVE", "ERROR")
                    assert s["status"] == "ACTIVE", s.get("fault")

                async def proven(sid: str):
                    return proof(await console_text(client, sid))
                seen = {role: await wait_for(lambda s=sid: proven(s), timeout=BOOT_TIMEOUT,
                                             interval=5)
                        for role, sid in sids.items()}
                print(f"cloud-init guests configured in {time.monotonic() - t0:.0f} s")

                for role, got in seen.items():
                    assert got["ci-hostname"] == f"ci-{role}-guest", got
                    assert got["ci-etc-hostname"] == f"ci-{role}-guest", got
                    assert got["ci-key"].strip() == kp["public_key"].strip(), got
                assert "metadata (http://169.254.169.254)" in seen["md"]["ci-source"], seen["md"]
                assert "config-disk" in seen["cd"]["ci-source"], seen["cd"]
                stats = daemon.appliance.ctx.components.network.manager.metadata.server.stats
                assert stats["ok"] >= 5 and stats["errors"] == 0, stats
            finally:
                for sid in made:
                    try:
                        await client.delete(f"{C}/servers/{sid}")
                    except Exception:
                        pass
                compute = daemon.appliance.ctx.components.compute.manager
                try:
                    await compute.wait_idle(120)
                except Exception:
                    pass
                await client.close()
    finally:
        destroy_domains(made)
        remove_tree(base)
