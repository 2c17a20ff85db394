"""A whole cloud with fixed names for the screen snapshots: every component running in one
daemon thread (libvirt test:///default; the network component when we may make namespaces),
seeded through the same API everyone uses.

What it holds, so snapshots can be read against it:
- images: cirros (public, an empty 64 MiB qcow2 + properties), tinyguest (private, raw, 2 MiB)
- servers (sequentially, so addresses are stable): web-1 ACTIVE, web-2 SHUTOFF (stopped),
  db-1 PAUSED, big-1 ERROR (a flavor no host can hold: NoValidHost)
- volumes: data-1 (1 GiB), logs (2 GiB), boot-vol (1 GiB from cirros; db-1 boots from it),
  snapshot logs-snap
- objects: container photos (2025/jan/a.jpg, 2025/feb/b.jpg, readme.txt with metadata),
  container backups (db.tar.gz, 3 KiB)
- DHCP leases for the servers' ports (stored directly: no guest runs under the test driver)

MAC addresses come from a seeded generator while the fixture runs, so ports read the same on
every run.
"""
from __future__ import annotations

import asyncio
import os
import random
import shutil
from pathlib import Path

import pytest

from tests.tui.harness import FROZEN, ThreadDaemon

BASE = ["images",
        "volumes",
        "compute",
        "objects"]
NETWORK = "network"
NOVA = {"OpenStack-API-Version": "compute 2.60"}


def network_possible() -> bool:
    """The network component makes a namespace and bridges: root and `ip` are needed."""
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nft") is not None


def start_cloud(base: Path) -> ThreadDaemon:
    with_network = network_possible()
    components = BASE[:2] + ([NETWORK] if with_network else []) + BASE[2:]
    mp = pytest.MonkeyPatch()
    if with_network:
        from appliance.network import ipam
        real = ipam.generate_mac
        mp.setattr(ipam, "generate_mac",
                   lambda existing, rng=None: real(existing, random.Random(len(existing) + 7)))
    daemon = ThreadDaemon(base, components).start()
    daemon.monkeypatch = mp  # type: ignore[attr-defined]
    try:
        daemon.call(_seed(daemon, base, with_network), timeout=120)
    except BaseException:
        stop_cloud(daemon)
        raise
    return daemon


def stop_cloud(daemon: ThreadDaemon) -> None:
    try:
        async def clean(admin) -> None:
            for s in (await admin.get("/compute/v2.1/servers"))["servers"]:
                await admin.delete(f"/compute/v2.1/servers/{s['id']}")
        daemon.admin_do(clean)
    finally:
        daemon.stop()
        daemon.monkeypatch.undo()  # type: ignore[attr-defined]


async def _until(probe, what: str, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"seeding: {what} not reached")
        await asyncio.sleep(0.05)


async def _seed(daemon: ThreadDaemon, base: Path, with_network: bool) -> None:
    admin = daemon.admin
    assert admin is not None
    # images
    images = {}
    qcow2 = base / "cirros.qcow2"
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "64M")
    assert await proc.wait() == 0
    for name, fmt, data, vis, props in (
            ("cirros", "qcow2", qcow2.read_bytes(), "public",
             {"os_distro": "cirros", "hw_rng_model": "virtio"}),
            ("tinyguest", "raw", b"\0" * (2 << 20), "private", {})):
        body = await admin.post("/image/v2/images", {
            "name": name, "disk_format": fmt, "container_format": "bare", "visibility": vis,
            **props})
        await admin.upload("PUT", f"/image/v2/images/{body['id']}/file", data)
        images[name] = body["id"]
    # volumes
    project = admin.session.project_id
    vol = f"/volume/v3/{project}"
    volumes = {}
    for name, size, image in (("data-1", 1, None), ("logs", 2, None),
                              ("boot-vol", 1, images["cirros"])):
        body = await admin.post(vol + "/volumes", {"volume": {
            "name": name, "size": size, **({"imageRef": image} if image else {})}})
        vid = volumes[name] = body["volume"]["id"]

        async def available(vid=vid):
            v = (await admin.get(f"{vol}/volumes/{vid}"))["volume"]
            return v["status"] == "available"
        await _until(available, f"volume {name}")
    await admin.post(f"{vol}/snapshots", {"snapshot": {
        "volume_id": volumes["logs"], "name": "logs-snap"}})

    async def snapped():
        snaps = (await admin.get(f"{vol}/snapshots/detail"))["snapshots"]
        return snaps and all(s["status"] == "available" for s in snaps)
    await _until(snapped, "snapshot")
    # servers, one at a time so IPs are stable
    flavors = {f["name"]: f["id"] for f in
               (await admin.get("/compute/v2.1/flavors", headers=NOVA))["flavors"]}
    big = await admin.post("/compute/v2.1/flavors", {"flavor": {
        "name": "m1.huge", "ram": 40960, "vcpus": 2, "disk": 1}}, headers=NOVA)
    flavors["m1.huge"] = big["flavor"]["id"]
    small = "m1.tiny" if "m1.tiny" in flavors else sorted(flavors)[0]
    servers = {}
    for name, flavor in (("web-1", small), ("web-2", small), ("db-1", small),
                         ("big-1", "m1.huge")):
        source = {"imageRef": images["cirros"]} if name != "db-1" else {
            "block_device_mapping_v2": [{
                "uuid": volumes["boot-vol"], "boot_index": 0, "source_type": "volume",
                "destination_type": "volume", "delete_on_termination": False}]}
        body = await admin.post("/compute/v2.1/servers", {"server": {
            "name": name, "flavorRef": flavors[flavor], **source,
            "networks": "auto" if with_network else "none"}}, headers=NOVA)
        sid = servers[name] = body["server"]["id"]
        want = "ERROR" if name == "big-1" else "ACTIVE"

        async def status(sid=sid, want=want):
            s = (await admin.get(f"/compute/v2.1/servers/{sid}", headers=NOVA))["server"]
            return s["status"] == want and not s.get("OS-EXT-STS:task_state")
        await _until(status, f"{name} {want}")
    for name, action, want in (("web-2", "os-stop", "SHUTOFF"), ("db-1", "pause", "PAUSED")):
        await admin.post(f"/compute/v2.1/servers/{servers[name]}/action", {action: None},
                         headers=NOVA)

        async def status(sid=servers[name], want=want):
            s = (await admin.get(f"/compute/v2.1/servers/{sid}", headers=NOVA))["server"]
            return s["status"] == want and not s.get("OS-EXT-STS:task_state")
        await _until(status, f"{name} {want}")
    # objects
    swift = f"/swift/v1/AUTH_{project}"
    for container in ("backups", "photos"):
        await admin.put(f"{swift}/{container}")
    for path, size, ctype, meta in (
            ("photos/2025/jan/a.jpg", 2048, "image/jpeg", {}),
            ("photos/2025/jan/b.jpg", 4096, "image/jpeg", {}),
            ("photos/2025/feb/c.jpg", 1024, "image/jpeg", {}),
            ("photos/readme.txt", 120, "text/plain", {"X-Object-Meta-Owner": "alice"}),
            ("backups/db.tar.gz", 3072, "application/gzip", {})):
        await admin.upload("PUT", f"{swift}/{path}", b"x" * size,
                           headers={"Content-Type": ctype, **meta})
    await admin.post(f"{swift}/photos", headers={"X-Container-Read": ".r:*,.rlistings",
                                                 "X-Container-Meta-Purpose": "gallery"})
    # DHCP leases for the servers' ports, as the DHCP server would have stored them
    if with_network:
        from appliance.network.records import LeaseRecord, LeaseState
        manager = daemon.daemon.appliance.ctx.components.network.manager  # type: ignore[union-attr]
        for port in sorted(manager.ports.list(), key=lambda p: p.mac_address):
            if not str(port.device_owner).startswith("compute") or not port.fixed_ips:
                continue
            name = next((n for n, i in servers.items() if i == port.device_id), "")
            await manager.leases.save(LeaseRecord(
                id=f"{port.network_id}:{port.mac_address}", network_id=port.network_id,
                mac=port.mac_address, ip=port.fixed_ips[0]["ip_address"],
                state=LeaseState.ACTIVE, port_id=port.id, project_id=port.project_id,
                hostname=name, granted_at=FROZEN - 600, expires_at=FROZEN + 85800,
                updated_at=FROZEN - 600))
    # The overview shows the latest events: end with a fixed dozen so it reads the same on
    # every run (seeding's own events name random port ids).
    events = daemon.daemon.appliance.ctx.events  # type: ignore[union-attr]
    for kind, rtype, name, message in (
            ("instance.created", "instance", "web-1", "scheduled on vm"),
            ("instance.state", "instance", "web-1", "ACTIVE"),
            ("instance.state", "instance", "web-2", "ACTIVE"),
            ("instance.state", "instance", "db-1", "ACTIVE"),
            ("instance.fault", "instance", "big-1",
             "NoValidHost: RamFilter: 40960 MiB asked, 2176 free"),
            ("volume.created", "volume", "data-1", "1 GiB, available"),
            ("volume.created", "volume", "logs", "2 GiB, available"),
            ("snapshot.created", "snapshot", "logs-snap", "of logs, available"),
            ("instance.state", "instance", "web-2", "SHUTOFF (stopped by admin)"),
            ("instance.state", "instance", "db-1", "PAUSED (paused by admin)"),
            ("container.created", "container", "photos", "read ACL .r:*,.rlistings"),
            ("lease.granted", "lease", "web-1", "10.0.0.2 granted for 24h")):
        await events.publish(kind, rtype, f"{rtype}-{name}", None, message, name=name)
