"""Footprint with real guests: `monostack serve` (its own process, the images, network and
compute components on qemu:///system) idle, then with 10 TCG guests running, next to what
those guests themselves cost (the sum of their qemu processes' RSS) and libvirtd.

The ratio that matters to a single-host cloud is the control plane's share: daemon RSS over
the guests' RSS. The 100/1,000-instance growth on the test driver is in bench_api.
MONOSTACK_BENCH_REAL=0 (or no qemu:///system) skips it.
"""
from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from tests.bench.bench_api import rss_mib
from tests.bench.bench_boot import _real_libvirt
from tests.daemon import (
    ADMIN_PASSWORD,
    DaemonProcess,
    remove_namespace,
    run_init,
    write_config,
)
from tests.integration.realguest import (
    C,
    boot,
    delete_servers_quietly,
    destroy_domains,
    make_flavor,
    new_test_dir,
    real_config_extra,
    remove_tree,
    upload_guest_image,
    wait_status,
)

GUESTS = 10


def _pids_of(name: str, needle: str = "") -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if comm.startswith(name) and needle in cmdline:
            pids.append(int(proc.name))
    return pids


def _rss_sum(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += rss_mib(pid)
        except (OSError, ValueError):
            pass
    return total


async def _measure(tmp: Path) -> dict:
    from tests.guest_image import ensure_guest_image
    image = ensure_guest_image().qcow2
    base = new_test_dir()
    extra = real_config_extra(base)
    extra["compute"]["cpu_allocation_ratio"] = 16.0  # 10 one-vCPU guests on a 2-core host
    path, config = write_config(tmp, components=["images", "network", "compute"], extra=extra)
    made: list[str] = []
    daemon = DaemonProcess(path, config)
    client = None
    try:
        run_init(path)
        daemon.start(timeout=120)
        client = daemon.client()
        await client.login("admin", ADMIN_PASSWORD, "admin")
        await asyncio.sleep(2)
        idle = rss_mib(daemon.proc.pid)
        image_id = await upload_guest_image(client, image)
        flavor = await make_flavor(client)
        pid = client.session.project_id
        await client.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {
            "instances": -1, "cores": -1, "ram": -1}})
        for i in range(GUESTS):
            await boot(client, f"fp-{i}", image_id, flavor, made)
        for sid in made:
            s = await wait_status(client, sid, "ACTIVE", "ERROR", timeout=600)
            assert s["status"] == "ACTIVE", s.get("fault")
        await asyncio.sleep(5)  # let the guests' first seconds of boot pass
        loaded = rss_mib(daemon.proc.pid)
        qemu = _rss_sum([p for sid in made for p in _pids_of("qemu-system", sid)])
        libvirtd = _rss_sum(_pids_of("libvirtd"))
        return {"guests": GUESTS, "daemon_rss_idle_mib": idle,
                "daemon_rss_with_guests_mib": loaded,
                "daemon_kib_per_guest": (loaded - idle) * 1024 / GUESTS,
                "guests_qemu_rss_mib": qemu, "libvirtd_rss_mib": libvirtd,
                "ratio_daemon_vs_guests": loaded / qemu if qemu else None}
    finally:
        if client is not None:
            await delete_servers_quietly(client, made)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                servers = (await client.get(f"{C}/servers"))["servers"]
                if not servers:
                    break
                await asyncio.sleep(1)
            await client.close()
        daemon.stop()
        await asyncio.to_thread(destroy_domains, made)
        remove_namespace(config)
        remove_tree(base)


def run() -> dict:
    if not _real_libvirt():
        print("   [qemu:///system] not reachable (or MONOSTACK_BENCH_REAL=0): skipped")
        return {"skipped": True}
    with tempfile.TemporaryDirectory(prefix="bench-fp-" + uuid.uuid4().hex[:6]) as tmp:
        r = asyncio.run(_measure(Path(tmp)))
    print(f"   daemon RSS idle {r['daemon_rss_idle_mib']:.0f} MiB → with {r['guests']} TCG guests "
          f"{r['daemon_rss_with_guests_mib']:.0f} MiB ({r['daemon_kib_per_guest']:.0f} KiB/guest)")
    print(f"   the guests' qemu processes {r['guests_qemu_rss_mib']:.0f} MiB, libvirtd "
          f"{r['libvirtd_rss_mib']:.0f} MiB → daemon / guests ratio "
          f"{r['ratio_daemon_vs_guests']:.2f}")
    return r


if __name__ == "__main__":
    run()
