"""The in-process DHCP server on a real bridge, answering busybox udhcpc in fake guests.

Everything happens in namespaces this test creates (a data-plane namespace with one bridge, and
one namespace per fake guest with a veth into that bridge), all removed in `finally`.
"""
from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import uuid
from ipaddress import IPv4Address

import pytest

from appliance.dhcp.leases import LeaseEventKind
from appliance.dhcp.server import DhcpServer, Reservation
from appliance.network.netlink import DataPlane, list_namespaces
from appliance.network.nsexec import preexec_setns, run_in_namespace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (udhcpc)"),
]

SCRIPT = """#!/bin/sh
echo "EVENT=$1 ip=$ip mask=$mask subnet=$subnet router=$router dns=$dns mtu=$mtu hostname=$hostname domain=$domain serverid=$serverid lease=$lease staticroutes=$staticroutes"
if [ "$1" = bound ]; then busybox ip addr add "$ip/$mask" dev "$interface"; fi
exit 0
"""


def parse_bound(output: str) -> dict[str, str] | None:
    for line in output.splitlines():
        if line.startswith("EVENT=bound "):
            fields = {}
            key = None
            for token in line.split(" "):
                if "=" in token:
                    key, _, value = token.partition("=")
                    fields[key] = value
                elif key:  # space-separated lists (dns, staticroutes)
                    fields[key] += " " + token
            return fields
    return None


def udhcpc_argv(script: str, tries: int = 3) -> list[str]:
    return ["busybox", "udhcpc", "-i", "eth0", "-n", "-f", "-s", script,
            "-t", str(tries), "-T", "1", "-A", "1", "-O", "mtu", "-O", "staticroutes"]


async def udhcpc(namespace: str, script: str, tries: int = 3) -> tuple[int, str]:
    """Get a lease and quit (-q)."""
    result = await run_in_namespace(namespace, [*udhcpc_argv(script, tries), "-q"], timeout=30)
    return result.returncode, result.stdout.decode() + result.stderr.decode()


async def udhcpc_then_release(namespace: str, script: str) -> tuple[int, str]:
    """Get a lease, then stop udhcpc with SIGTERM so -R releases it.

    (busybox 1.35 with -q -R quits before entering BOUND and so never sends the RELEASE.)
    """
    proc = await asyncio.create_subprocess_exec(
        *udhcpc_argv(script), "-R", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        preexec_fn=preexec_setns(namespace),
    )
    lines = []
    try:
        async with asyncio.timeout(20):
            while line := (await proc.stdout.readline()).decode():
                lines.append(line)
                if line.startswith("EVENT=bound "):
                    break
            proc.send_signal(signal.SIGTERM)
            lines.append((await proc.stdout.read()).decode())
            rc = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return rc, "".join(lines)


async def test_fake_guests_get_exactly_their_reservations(tmp_path):
    tag = uuid.uuid4().hex[:8]
    dp_name = f"msdp-{tag}"
    bridge = f"brd{tag[:8]}"
    net = f"10.{random.randrange(100, 250)}.{random.randrange(0, 250)}"
    gateway = f"{net}.1"
    guests = {
        "a": (f"msg-{tag}-a", "02:00:5e:10:00:0a", f"{net}.10"),
        "b": (f"msg-{tag}-b", "02:00:5e:10:00:0b", f"{net}.11"),
        "x": (f"msg-{tag}-x", "02:00:5e:10:00:ff", None),  # no port: must get nothing
    }
    reservations = {
        guests["a"][1]: Reservation(
            ip=guests["a"][2], network=f"{net}.0/24", router=gateway, dns_servers=(f"{net}.2", "9.9.9.9"),
            domain="monostack.test", hostname="guest-a", mtu=1400,
            static_routes=((f"169.254.169.254/32", f"{net}.3"),), lease_time=600,
        ),
        guests["b"][1]: Reservation(
            ip=guests["b"][2], network=f"{net}.0/24", router=gateway, dns_servers=(f"{net}.2",),
            hostname="guest-b", mtu=1400, lease_time=3,
        ),
    }
    events = []

    async def sink(event):
        events.append(event)

    script = tmp_path / "udhcpc.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)

    dp = DataPlane(dp_name)
    guest_planes = [DataPlane(ns) for ns, _, _ in guests.values()]
    server = None
    try:
        await dp.ensure_namespace()
        await dp.ensure_bridge(bridge, 1400, f"{gateway}/24")
        for (ns, mac, _), gp, port in zip(guests.values(), guest_planes, "abx"):
            await gp.ensure_namespace()
            await dp.make_veth_pair(bridge, f"v{tag}{port}", ns, "eth0", peer_mac=mac)
        ports = await dp.list_ports(bridge)
        assert sorted(p.name for p in ports) == sorted(f"v{tag}{p}" for p in "abx")

        server = DhcpServer(
            bridge, gateway, reservations.get, sink,
            socket_factory=lambda: dp.socket_in_namespace(bridge), expiry_interval=0.5,
        )
        await server.start()

        # Guest a: full option set, then release on exit.
        rc, out = await udhcpc_then_release(guests["a"][0], str(script))
        bound = parse_bound(out)
        assert bound is not None, out
        assert "unicasting a release" in out, out
        assert bound["ip"] == guests["a"][2]
        assert bound["router"] == gateway
        assert bound["dns"].split() == [f"{net}.2", "9.9.9.9"]
        assert bound["subnet"] == "255.255.255.0" and bound["mask"] == "24"
        assert bound["mtu"] == "1400"
        assert bound["hostname"] == "guest-a" and bound["domain"] == "monostack.test"
        assert bound["serverid"] == gateway and bound["lease"] == "600"
        assert bound["staticroutes"].split() == ["169.254.169.254/32", f"{net}.3", "0.0.0.0/0", gateway]

        # Guest b: short lease, no release: it must expire.
        rc, out = await udhcpc(guests["b"][0], str(script))
        assert rc == 0, out
        bound = parse_bound(out)
        assert bound is not None and bound["ip"] == guests["b"][2] and bound["router"] == gateway, out

        # Guest x: no reservation, no answer.
        unknown_before = server.stats["dropped_unknown"]
        rc, out = await udhcpc(guests["x"][0], str(script), tries=2)
        assert rc != 0 and parse_bound(out) is None, out
        assert server.stats["dropped_unknown"] > unknown_before

        for _ in range(100):
            if any(e.kind is LeaseEventKind.EXPIRED for e in events) and any(
                e.kind is LeaseEventKind.RELEASED for e in events
            ):
                break
            await asyncio.sleep(0.1)
        by_mac = {}
        for event in events:
            by_mac.setdefault(event.lease.mac, []).append(event.kind)
        assert by_mac[guests["a"][1]] == [LeaseEventKind.GRANTED, LeaseEventKind.RELEASED]
        assert by_mac[guests["b"][1]] == [LeaseEventKind.GRANTED, LeaseEventKind.EXPIRED]
        assert guests["x"][1] not in by_mac
        assert {IPv4Address(e.lease.ip) for e in events} == {IPv4Address(guests["a"][2]), IPv4Address(guests["b"][2])}
        assert server.stats["errors"] == 0 and server.stats["offers"] >= 2 and server.stats["acks"] >= 2
    finally:
        if server is not None:
            await server.stop()
        for gp in guest_planes:
            await gp.delete_namespace()
        await dp.delete_namespace()
    leftover = [ns for ns in list_namespaces() if tag in ns]
    assert leftover == []
