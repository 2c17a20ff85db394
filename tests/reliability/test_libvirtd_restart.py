"""Fault injection: libvirtd dies (SIGKILL) and comes back under a running `monostack serve`
with real TCG guests on qemu:///system.

While libvirtd is away the appliance says so (/healthz: compute degraded) and does not rewrite
what it cannot see: a running guest stays ACTIVE and Running in its record. When libvirtd is
back the daemon reconnects by itself, with no API call needed: the guest that ran through the
outage still answers on its serial console, a new guest boots and gets its DHCP lease, and
lifecycle events flow again (a domain destroyed behind the daemon's back shows as SHUTOFF
within seconds, long before the periodic power sync).

Only a libvirtd that the test suite started itself (tests/run.sh records its pid) is killed;
one someone else runs is never touched, and the test skips.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import libvirt
import pytest

from tests.daemon import (
    ADMIN_PASSWORD,
    DaemonProcess,
    remove_namespace,
    run_init,
    wait_for,
    write_config,
)
from tests.integration.realguest import (
    REAL_GUEST_MARKS,
    URI,
    Console,
    boot,
    delete_servers_quietly,
    destroy_domains,
    domain_active,
    guest_image_or_skip,
    libvirt_reachable,
    make_flavor,
    new_test_dir,
    real_config_extra,
    remove_tree,
    server,
    upload_guest_image,
    wait_leases,
    wait_status,
)

pytestmark = REAL_GUEST_MARKS
OWNED = Path("/run/monostack-tests-libvirtd.pid")
PIDFILE = Path("/run/libvirtd.pid")


def owned_libvirtd() -> int | None:
    """The pid of the running libvirtd when tests/run.sh started it, else None."""
    try:
        owned, current = OWNED.read_text().strip(), PIDFILE.read_text().strip()
    except OSError:
        return None
    try:  # both files may be stale (a /run that is not a tmpfs): the process must be libvirtd
        alive = Path(f"/proc/{current}/comm").read_text().strip() == "libvirtd"
    except OSError:
        alive = False
    if owned != current or not alive:
        return None
    return int(current)


def kill_libvirtd(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def start_libvirtd() -> None:
    """Start libvirtd again (idempotent) and record it as the suite's own."""
    if not libvirt_reachable():
        subprocess.run(["libvirtd", "-d"], check=True)
        deadline = time.monotonic() + 30
        while not libvirt_reachable() and time.monotonic() < deadline:
            time.sleep(0.2)
    OWNED.write_text(PIDFILE.read_text())


async def compute_health(daemon: DaemonProcess) -> tuple[str, str]:
    """The daemon's health with its component lines (shown on the local socket only)."""
    async with daemon.client() as client:
        _, _, doc = await client._send("GET", "/healthz", token=None)
    return doc["status"], doc["components"]["compute"]


async def test_daemon_rides_out_a_libvirtd_crash_and_reconnects(tmp_path):
    if not libvirt_reachable():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    pid = owned_libvirtd()
    if pid is None:
        pytest.skip("the running libvirtd was not started by tests/run.sh; killing it would "
                    "disturb whoever runs it")
    image = guest_image_or_skip()
    base = new_test_dir()
    config = None
    made: list[str] = []
    daemon = client = None
    try:
        path, config = write_config(tmp_path, components=["images", "network", "compute"],
                                    extra=real_config_extra(base))
        run_init(path)
        daemon = DaemonProcess(path, config)
        daemon.start()
        client = daemon.client()
        await client.login("admin", ADMIN_PASSWORD, "admin")
        image_id = await upload_guest_image(client, image)
        flavor_id = await make_flavor(client)
        a = await boot(client, "lvd-a", image_id, flavor_id, made)
        sa = await wait_status(client, a, "ACTIVE", "ERROR")
        assert sa["status"] == "ACTIVE", sa.get("fault")
        await wait_leases(client, a, 1)
        assert (await compute_health(daemon))[0] == "ok"

        # --- libvirtd crashes ------------------------------------------------------------
        await asyncio.to_thread(kill_libvirtd, pid)

        async def degraded():
            st, line = await compute_health(daemon)
            return (st, line) if line.startswith("degraded") else None
        st, line = await wait_for(degraded, timeout=30, interval=0.2)
        assert st == "degraded" and "reconnecting" in line
        s = await server(client, a)  # what the daemon cannot see, it does not rewrite
        assert s["status"] == "ACTIVE" and s["OS-EXT-STS:power_state"] == 1

        # --- and comes back: the daemon reconnects without being asked --------------------
        await asyncio.to_thread(start_libvirtd)

        async def healthy():
            st, line = await compute_health(daemon)
            return st == "ok" and line.startswith("ok")
        await wait_for(healthy, timeout=60, interval=0.3)
        assert domain_active(a), "the guest did not survive libvirtd's restart"
        assert (await server(client, a))["status"] == "ACTIVE"
        console = await Console.open(client, a)
        try:
            await console.run("echo alive-$((6*7))", "alive-42", timeout=60)
        finally:
            await console.close()

        b = await boot(client, "lvd-b", image_id, flavor_id, made)
        sb = await wait_status(client, b, "ACTIVE", "ERROR")
        assert sb["status"] == "ACTIVE", sb.get("fault")
        await wait_leases(client, b, 1)

        # lifecycle events flow on the new connection: a crash behind our back is seen at once
        conn = libvirt.open(URI)
        try:
            await asyncio.to_thread(conn.lookupByUUIDString(a).destroy)
        finally:
            conn.close()
        t0 = time.monotonic()
        s = await wait_status(client, a, "SHUTOFF", timeout=15)
        print(f"\nSHUTOFF seen {time.monotonic() - t0:.1f} s after the domain was destroyed")
        assert s["OS-EXT-STS:power_state"] == 4
    finally:
        await asyncio.to_thread(start_libvirtd)  # never leave the machine without libvirtd
        if client is not None:
            await delete_servers_quietly(client, made)
            await client.close()
        if daemon is not None:
            daemon.stop()
        await asyncio.to_thread(destroy_domains, made)
        if config is not None:
            remove_namespace(config)
        remove_tree(base)
