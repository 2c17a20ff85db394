"""Fault injection: the world breaks under a running daemon; it reports, recovers or refuses
cleanly (a 4xx/503/507 with a message, never a 500), and loses nothing it acknowledged.

Disk-full cases run on a small tmpfs the test mounts under /var/lib/monostack-test/<uuid>
(and unmounts in `finally`), holding the images directory or the state directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from appliance.client import MonostackClient
from appliance.errors import InsufficientStorage
from tests.conftest import QEMU_TEST_ROOT
from tests.daemon import ADMIN_PASSWORD, InProcessDaemon, write_config
from tests.reliability.support import N, raw, require

MiB = 1 << 20


@pytest.fixture
def small_fs():
    """mount(size_mib) → a fresh tmpfs directory of that size; all unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    base = QEMU_TEST_ROOT / ("faults-" + uuid.uuid4().hex[:10])
    base.mkdir(parents=True, mode=0o755)
    mounts: list[Path] = []

    def mount(name: str, size_mib: int) -> Path:
        path = base / name
        path.mkdir(mode=0o755)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs",
                        str(path)], check=True)
        mounts.append(path)
        return path

    try:
        yield base, mount
    finally:
        for path in reversed(mounts):
            subprocess.run(["umount", "-l", str(path)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Take all but `leave_bytes` of a filesystem with one file; delete it to free the space."""
    filler = directory / "filler.bin"
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize - leave_bytes
    with open(filler, "wb") as f:
        chunk = b"\0" * MiB
        try:
            while free > 0:
                f.write(chunk[:min(free, MiB)])
                free -= MiB
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            pass
    return filler


async def test_disk_full_during_image_upload_is_507_leaves_nothing_and_recovers(small_fs):
    require("image")
    base, mount = small_fs
    images = mount("images", 16)
    _, config = write_config(base, components=["images"],
                             extra={"storage": {"images_dir": str(images)}})
    async with InProcessDaemon(config) as daemon:
        admin = await daemon.admin_client()
        try:
            data = os.urandom(6 * MiB)
            filler = _fill(images, leave_bytes=2 * MiB)
            img = await admin.post("/image/v2/images", {"name": "big", "disk_format": "raw",
                                                        "container_format": "bare"})
            with pytest.raises(InsufficientStorage):
                await admin.upload("PUT", f"/image/v2/images/{img['id']}/file", data)
            after = await admin.get(f"/image/v2/images/{img['id']}")
            assert after["status"] == "queued", after  # nothing half-published
            leftovers = [p.name for p in images.rglob("*") if p.is_file() and p != filler]
            assert not leftovers, f"partial upload left files behind: {leftovers}"
            assert (await admin.get("/v3/projects"))["projects"]  # still serving
            filler.unlink()  # space comes back: the same image uploads
            await admin.upload("PUT", f"/image/v2/images/{img['id']}/file", data)
            done = await admin.get(f"/image/v2/images/{img['id']}")
            assert done["status"] == "active" and done["size"] == len(data)
            got = b"".join([c async for c in admin.download(f"/image/v2/images/{img['id']}/file")])
            assert got == data
        finally:
            await admin.close()


async def test_disk_full_during_state_writes_is_507_changes_nothing_and_recovers(small_fs):
    base, mount = small_fs
    state = mount("state", 8)
    _, config = write_config(base, components=["core"])
    assert Path(config.state_dir) == state
    acked: list[str] = []
    async with InProcessDaemon(config, components=[]) as daemon:
        admin = await daemon.admin_client()
        try:
            for i in range(5):
                acked.append((await admin.post("/v3/projects", {"project": {
                    "name": f"before-{i}"}}))["project"]["name"])
            filler = _fill(state)
            refused = 0
            for i in range(20):  # a burst: group commits fail together, none half-applied
                try:
                    await admin.post("/v3/projects", {"project": {"name": f"full-{i}"}})
                    acked.append(f"full-{i}")  # a write that still fit is a real write
                except InsufficientStorage:
                    refused += 1
            assert refused > 0, "the filesystem never filled"
            names = {p["name"] for p in (await admin.get("/v3/projects"))["projects"]}
            assert set(acked) <= names
            assert not {f"full-{i}" for i in range(20)} - set(acked) & names, \
                "a refused write is visible"
            health = await raw("GET", daemon.url + "/healthz")
            assert health[0] == 200
            filler.unlink()
            acked.append((await admin.post("/v3/projects", {"project": {
                "name": "after"}}))["project"]["name"])
        finally:
            await admin.close()
    async with InProcessDaemon(config, components=[]) as daemon:  # the store reopens whole
        async with MonostackClient(socket_path=config.api.socket) as admin:
            await admin.login("admin", ADMIN_PASSWORD, "admin")
            names = {p["name"] for p in (await admin.get("/v3/projects"))["projects"]}
            assert set(acked) <= names
            assert not any(n.startswith("full-") and n not in acked for n in names)


async def test_object_device_directory_removed_reads_survive_writes_refuse_cleanly(tmp_path):
    require("object")
    _, config = write_config(tmp_path, components=["objects"])
    async with InProcessDaemon(config) as daemon:
        admin = await daemon.admin_client()
        try:
            pid = admin.session.project_id
            base = f"/swift/v1/AUTH_{pid}/c"
            await admin.request("PUT", base)
            stored = {}
            for i in range(10):
                data = os.urandom(1000 + i)
                await admin.upload("PUT", f"{base}/o{i}", data)
                stored[f"o{i}"] = data
            victim = Path(config.storage.object_devices[1])
            shutil.rmtree(victim)
            for name, data in stored.items():  # replicas on the other devices answer
                got = b"".join([c async for c in admin.download(f"{base}/{name}")])
                assert got == data, name
            statuses = []
            for i in range(10):
                status, text = await raw("PUT", daemon.url + f"{base}/after{i}",
                                         token=admin.token, data=b"x" * 100)
                assert status < 500 or status in (503, 507), f"{status} {text[:200]}"
                statuses.append(status)
            status, text = await raw("GET", daemon.url + f"{base}?format=json", token=admin.token)
            assert status == 200, text[:200]
            health = await raw("GET", daemon.url + "/healthz")
            assert health[0] == 200
            victim.mkdir(parents=True)  # the device comes back
            status, _ = await raw("PUT", daemon.url + f"{base}/back", token=admin.token,
                                  data=b"back")
            assert status == 201
            got = b"".join([c async for c in admin.download(f"{base}/back")])
            assert got == b"back"
            print(f"\nPUT answers with a device gone: {statuses}; health {health[1][:200]}")
        finally:
            await admin.close()


async def test_dataplane_namespace_deleted_behind_the_daemon(tmp_path):
    require("network")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    _, config = write_config(tmp_path, components=["network"])
    ns = config.network.namespace
    async with InProcessDaemon(config) as daemon:
        admin = await daemon.admin_client()
        try:
            net = (await admin.post(f"{N}/networks", {"network": {"name": "f"}}))["network"]
            await admin.post(f"{N}/subnets", {"subnet": {"network_id": net["id"],
                                                         "ip_version": 4, "cidr": "10.66.0.0/24"}})
            before = (await admin.post(f"{N}/ports", {"port": {"network_id": net["id"]}}))["port"]
            assert Path(f"/run/netns/{ns}").exists()
            subprocess.run(["ip", "netns", "delete", ns], check=True)
            answers = []
            for _ in range(3):
                status, text = await raw("POST", daemon.url + f"{N}/ports", token=admin.token,
                                         json_body={"port": {"network_id": net["id"]}})
                answers.append(status)
                assert status < 500 or status == 503, f"{status} {text[:300]}"
            status, text = await raw("GET", daemon.url + f"{N}/ports/{before['id']}",
                                     token=admin.token)
            assert status == 200, "an acknowledged port is gone"
            status, health = await raw("GET", daemon.url + "/healthz")
            assert status == 200
            print(f"\nport creates after the namespace vanished: {answers}; health: {health[:300]}")
        finally:
            await admin.close()
    # the next start rebuilds the data plane from the records
    async with InProcessDaemon(config) as daemon:
        async with MonostackClient(socket_path=config.api.socket) as admin:
            await admin.login("admin", ADMIN_PASSWORD, "admin")
            status, _ = await raw("GET", daemon.url + f"{N}/ports/{before['id']}",
                                  token=admin.token)
            assert status == 200
            assert Path(f"/run/netns/{ns}").exists(), "restart did not rebuild the namespace"

