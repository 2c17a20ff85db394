"""Fake guests on a monostack network: DHCP from the in-process server, security groups with
real TCP connections, anti-spoofing — all in namespaces this test creates and removes.

The daemon (network component only) makes its data-plane namespace and a bridge for the test
network; each fake guest is a namespace with a veth whose bridge end carries its port's tap
name and whose guest end carries the port's MAC, exactly as a plugged guest tap would.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid

import pytest

from appliance.network.netlink import DataPlane, list_namespaces
from appliance.network.nsexec import preexec_setns, run_in_namespace
from tests.daemon import InProcessDaemon, wait_for, write_config
from tests.integration.test_dhcp_netns import SCRIPT, parse_bound, udhcpc, udhcpc_then_release

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (udhcpc)"),
]
N = "/network/v2.0"

SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen()
    sel.register(s, selectors.EVENT_READ)
print("READY", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        conn.sendall(b"HELLO")
        conn.close()
"""

CLIENT = """
import socket, sys
s = socket.socket()
s.settimeout(1.5)
if len(sys.argv) > 3:
    s.bind((sys.argv[3], 0))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print(s.recv(16).decode())
except OSError as exc:
    print("FAIL", type(exc).__name__)
"""


async def connect(namespace: str, ip: str, port: int, source: str | None = None) -> str:
    argv = [sys.executable, "-c", CLIENT, ip, str(port)] + ([source] if source else [])
    result = await run_in_namespace(namespace, argv, timeout=20)
    return result.stdout.decode().strip()


async def test_fake_guests_dhcp_security_groups_and_spoofing(tmp_path):
    tag = uuid.uuid4().hex[:8]
    _, config = write_config(tmp_path, components=["network"])
    script = tmp_path / "udhcpc.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    guests = {k: f"msg-{tag}-{k}" for k in "abx"}
    planes = [DataPlane(ns) for ns in guests.values()]
    server = None
    try:
        async with InProcessDaemon(config, components=None) as daemon:
            admin = await daemon.admin_client()
            try:
                net = (await admin.post(f"{N}/networks", {"network": {"name": "guests", "mtu": 1450}}))["network"]
                sn = (await admin.post(f"{N}/subnets", {"subnet": {
                    "network_id": net["id"], "ip_version": 4, "cidr": "10.77.0.0/24",
                    "dns_nameservers": ["10.77.0.2"]}}))["subnet"]
                web = (await admin.post(f"{N}/security-groups", {"security_group": {"name": "web"}}))["security_group"]
                await admin.post(f"{N}/security-group-rules", {"security_group_rule": {
                    "security_group_id": web["id"], "direction": "ingress", "ethertype": "IPv4",
                    "protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080,
                    "remote_ip_prefix": "0.0.0.0/0"}})
                port_a = (await admin.post(f"{N}/ports", {"port": {"network_id": net["id"], "name": "guest-a"}}))["port"]
                port_b = (await admin.post(f"{N}/ports", {"port": {
                    "network_id": net["id"], "name": "guest-b", "security_groups": [web["id"]]}}))["port"]
                bridge = "msb" + net["id"].replace("-", "")[:11]
                dp = DataPlane(config.network.namespace)
                try:
                    for key, port in (("a", port_a), ("b", port_b), ("x", None)):
                        await DataPlane(guests[key]).ensure_namespace()
                        name = port["binding:vif_details"]["tap_name"] if port else f"vx{tag}"
                        mac = port["mac_address"] if port else "02:00:5e:77:00:ff"
                        await dp.make_veth_pair(bridge, name, guests[key], "eth0", peer_mac=mac)
                finally:
                    await dp.close()

                # DHCP: each guest gets exactly its port's address, router, DNS, MTU, name.
                rc, out = await udhcpc_then_release(guests["a"], str(script))
                bound_a = parse_bound(out)
                assert bound_a is not None, out
                assert bound_a["ip"] == port_a["fixed_ips"][0]["ip_address"]
                assert bound_a["router"] == sn["gateway_ip"] == "10.77.0.1"
                assert bound_a["dns"].split() == ["10.77.0.2"] and bound_a["mtu"] == "1450"
                assert bound_a["hostname"] == "guest-a" and bound_a["domain"] == "monostack.local"
                rc, out = await udhcpc(guests["b"], str(script))
                bound_b = parse_bound(out)
                assert rc == 0 and bound_b is not None, out
                assert bound_b["ip"] == port_b["fixed_ips"][0]["ip_address"]
                rc, out = await udhcpc(guests["x"], str(script), tries=2)
                assert rc != 0 and parse_bound(out) is None, out

                # Leases in the records and the API: a released (it quit with -R), b active.
                async def leases():
                    found = (await admin.get(f"{N}/monostack-dhcp-leases?network_id={net['id']}"))["leases"]
                    by_port = {le["port_id"]: le for le in found}
                    if by_port.get(port_a["id"], {}).get("state") == "released" and port_b["id"] in by_port:
                        return by_port
                by_port = await wait_for(leases, timeout=10)
                assert by_port[port_b["id"]]["state"] == "active"
                assert by_port[port_b["id"]]["ip"] == bound_b["ip"]
                assert by_port[port_b["id"]]["mac"] == port_b["mac_address"]
                assert len(by_port) == 2  # nothing for the unregistered MAC
                events = (await admin.get("/monostack/events?limit=50"))["events"]
                kinds = {(e["kind"], e["resource_id"]) for e in events}
                assert ("lease.granted", port_b["id"]) in kinds and ("lease.released", port_a["id"]) in kinds
                stats = (await admin.get(f"{N}/monostack-dhcp-stats"))["dhcp_stats"][bridge]
                assert stats["dropped_unknown"] >= 1 and stats["errors"] == 0
                # The daemon's edges are synchronous: its servers answer inside the socket's
                # read callback, with no queue hop (appliance/dhcp/server.py).
                dhcp = daemon.appliance.ctx.components.network.manager.dataplane._dhcp[bridge]
                assert dhcp._inline and dhcp._queue.empty()

                # Security groups with real TCP: b's group opens 8080 only.
                server = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", SERVER, "8080", "9090",
                    stdout=asyncio.subprocess.PIPE, preexec_fn=preexec_setns(guests["b"]))
                assert (await asyncio.wait_for(server.stdout.readline(), 10)).strip() == b"READY"
                ip_a, ip_b = bound_a["ip"], bound_b["ip"]
                assert await connect(guests["a"], ip_b, 8080) == "HELLO"
                assert (await connect(guests["a"], ip_b, 9090)).startswith("FAIL")

                # Spoofing: a second address on a's interface, used as the source, is dropped.
                spoofed = "10.77.0.99"
                result = await run_in_namespace(guests["a"], ["busybox", "ip", "addr", "add",
                                                              f"{spoofed}/24", "dev", "eth0"])
                assert result.returncode == 0, result.stderr
                assert (await connect(guests["a"], ip_b, 8080, source=spoofed)).startswith("FAIL")
                assert await connect(guests["a"], ip_b, 8080, source=ip_a) == "HELLO"

                # Opening 9090 through the API takes effect at once; allowing the spoofed
                # address as an address pair makes it legitimate.
                await admin.post(f"{N}/security-group-rules", {"security_group_rule": {
                    "security_group_id": web["id"], "direction": "ingress", "protocol": "tcp",
                    "port_range_min": 9090, "port_range_max": 9090}})
                assert await connect(guests["a"], ip_b, 9090) == "HELLO"
                await admin.put(f"{N}/ports/{port_a['id']}", {"port": {
                    "allowed_address_pairs": [{"ip_address": spoofed}]}})
                assert await connect(guests["a"], ip_b, 8080, source=spoofed) == "HELLO"
                # A prefix as the pair: any address in it, none outside it.
                for pair, verdict in (("10.77.0.96/28", "HELLO"), ("10.77.0.112/28", "FAIL")):
                    await admin.put(f"{N}/ports/{port_a['id']}", {"port": {
                        "allowed_address_pairs": [{"ip_address": pair}]}})
                    assert (await connect(guests["a"], ip_b, 8080, source=spoofed)).startswith(
                        verdict), pair
                    assert await connect(guests["a"], ip_b, 8080, source=ip_a) == "HELLO"
                await admin.put(f"{N}/ports/{port_a['id']}", {"port": {
                    "allowed_address_pairs": [{"ip_address": spoofed}]}})
                # Default group: ingress only from members; b (group web) cannot reach a.
                server_a = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", SERVER, "7070",
                    stdout=asyncio.subprocess.PIPE, preexec_fn=preexec_setns(guests["a"]))
                try:
                    assert (await asyncio.wait_for(server_a.stdout.readline(), 10)).strip() == b"READY"
                    assert (await connect(guests["b"], ip_a, 7070)).startswith("FAIL")
                    await admin.put(f"{N}/ports/{port_b['id']}", {"port": {
                        "security_groups": [web["id"], port_a["security_groups"][0]]}})
                    assert await connect(guests["b"], ip_a, 7070) == "HELLO"
                finally:
                    server_a.kill()
                    await server_a.wait()
            finally:
                await admin.close()
    finally:
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()
        for gp in planes:
            await gp.delete_namespace()
    assert [ns for ns in list_namespaces() if tag in ns or ns == config.network.namespace] == []
