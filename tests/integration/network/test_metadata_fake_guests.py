"""The metadata service at 169.254.169.254, asked by fake guests in namespaces this test makes.

A daemon with compute (libvirt test:///default), images and the network component boots two
servers on two networks that use the same subnet, so both guests have the same address and
only the network tells them apart. Each fake guest is a namespace with a veth carrying its
port's tap name and MAC (exactly what a plugged guest tap looks like to the bridge), gets its
lease from the in-process DHCP server (with the option-121 route to 169.254.169.254, as the
subnets have no router) and then asks over plain HTTP — as itself, as an impostor, and as a
hostile client.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import uuid

import pytest

from appliance.network.netlink import DataPlane, list_namespaces
from appliance.network.nsexec import run_in_namespace
from tests.compute_support import COMPONENTS, CONFIG_COMPONENTS, seed_test_image, TEST_IMAGE_ID
from tests.daemon import InProcessDaemon, wait_for, write_config
from tests.integration.test_dhcp_netns import parse_bound, udhcpc

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (udhcpc)"),
]
N = "/network/v2.0"
C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}
MD = "169.254.169.254"

# The lease applied the way a guest's DHCP client does it: address, then option 121 routes.
GUEST_SCRIPT = """#!/bin/sh
echo "EVENT=$1 ip=$ip mask=$mask router=$router staticroutes=$staticroutes"
if [ "$1" = bound ]; then
    busybox ip addr add "$ip/$mask" dev "$interface"
    set -- $staticroutes
    while [ $# -ge 2 ]; do busybox ip route add "$1" via "$2" dev "$interface"; shift 2; done
fi
exit 0
"""

# One raw HTTP exchange per line of argv (hex-encoded requests), optionally from a source
# address; prints one JSON object per request: status (0 = no connection) and body.
RAW_CLIENT = r"""
import json, socket, sys
source = sys.argv[1] or None
for raw in sys.argv[2:]:
    s = socket.socket()
    s.settimeout(3)
    try:
        if source:
            s.bind((source, 0))
        s.connect(("169.254.169.254", 80))
        s.sendall(bytes.fromhex(raw))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else -1
        print(json.dumps({"status": status, "body": body.decode("utf-8", "replace")}))
    except OSError as exc:
        print(json.dumps({"status": 0, "body": type(exc).__name__}))
    finally:
        s.close()
"""


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {MD}\r\n\r\n".encode()


async def ask(namespace: str, *requests: bytes, source: str = "") -> list[dict]:
    result = await run_in_namespace(
        namespace, [sys.executable, "-c", RAW_CLIENT, source, *(r.hex() for r in requests)],
        timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


async def ask_one(namespace: str, request: bytes, source: str = "") -> dict:
    return (await ask(namespace, request, source=source))[0]


class MetadataDaemon(InProcessDaemon):
    def __init__(self, config, scratch) -> None:
        super().__init__(config, components=[*COMPONENTS,
                                             "network"])
        self.scratch = scratch

    async def __aenter__(self):
        await super().__aenter__()
        try:
            client = await self.admin_client()
            try:
                await seed_test_image(client, self.scratch)
            finally:
                await client.close()
        except BaseException:
            await super().__aexit__(None, None, None)
            raise
        return self


async def boot(client, name: str, net_id: str, **extra) -> dict:
    body = {"server": {"name": name, "imageRef": TEST_IMAGE_ID, "flavorRef": "1",
                       "networks": [{"uuid": net_id}], **extra}}
    sid = (await client.post(f"{C}/servers", body, headers=H))["server"]["id"]

    async def active():
        s = (await client.get(f"{C}/servers/{sid}", headers=H))["server"]
        assert s["status"] != "ERROR", s.get("fault")
        return s if s["status"] == "ACTIVE" else None
    return await wait_for(active, timeout=60)


async def test_fake_guests_read_only_their_own_metadata(tmp_path):
    tag = uuid.uuid4().hex[:8]
    _, config = write_config(tmp_path, components=[*CONFIG_COMPONENTS, "network"],
                             extra={"compute": {"graceful_shutdown_timeout": 1}})
    script = tmp_path / "guest.sh"
    script.write_text(GUEST_SCRIPT)
    script.chmod(0o755)
    guests = {k: f"msm-{tag}-{k}" for k in ("a", "b", "c")}
    planes = [DataPlane(ns) for ns in guests.values()]
    try:
        async with MetadataDaemon(config, tmp_path) as daemon:
            admin = await daemon.admin_client()
            try:
                nets, bridges = [], []
                for i in (1, 2):
                    net = (await admin.post(f"{N}/networks", {"network": {"name": f"md{i}"}}))["network"]
                    await admin.post(f"{N}/subnets", {"subnet": {
                        "network_id": net["id"], "ip_version": 4, "cidr": "10.79.0.0/24"}})
                    nets.append(net)
                    bridges.append("msb" + net["id"].replace("-", "")[:11])
                kp = (await admin.post(f"{C}/os-keypairs", {"keypair": {"name": "mdkey"}}))["keypair"]
                script_a = b"#!/bin/sh\necho user-data-of-a\n"
                a = await boot(admin, "guest-a", nets[0]["id"], key_name="mdkey",
                               metadata={"role": "web"},
                               user_data=base64.b64encode(script_a).decode())
                b = await boot(admin, "guest-b", nets[1]["id"],
                               user_data=base64.b64encode(b"data-of-b").decode())
                c = await boot(admin, "guest-c", nets[0]["id"])
                # No config drive was asked for: the metadata service is the only source.
                assert not (config.compute.instances_dir / a["id"] / "disk.config").exists()

                ports = {}
                dp = DataPlane(config.network.namespace)
                try:
                    for key, server, bridge in (("a", a, bridges[0]), ("b", b, bridges[1]),
                                                ("c", c, bridges[0])):
                        port = (await admin.get(f"{N}/ports?device_id={server['id']}"))["ports"][0]
                        ports[key] = port
                        await DataPlane(guests[key]).ensure_namespace()
                        await dp.make_veth_pair(bridge, port["binding:vif_details"]["tap_name"],
                                                guests[key], "eth0", peer_mac=port["mac_address"])
                finally:
                    await dp.close()
                ip = {k: p["fixed_ips"][0]["ip_address"] for k, p in ports.items()}
                assert ip["a"] == ip["b"]  # same subnet on two networks: only the bridge differs

                # DHCP hands out the host route to the metadata address (no router here).
                for key in guests:
                    rc, out = await udhcpc(guests[key], str(script))
                    bound = parse_bound(out)
                    assert rc == 0 and bound is not None, out
                    assert bound["ip"] == ip[key]
                    assert f"{MD}/32 10.79.0.1" in bound["staticroutes"], bound

                # Each guest reads its own documents, in both formats.
                md_a = json.loads((await ask_one(guests["a"], get("/openstack/latest/meta_data.json")))["body"])
                assert md_a["uuid"] == a["id"] and md_a["name"] == "guest-a"
                assert md_a["public_keys"] == {"mdkey": kp["public_key"]}
                assert md_a["meta"] == {"role": "web"} and md_a["hostname"] == "guest-a"
                md_b = json.loads((await ask_one(guests["b"], get("/openstack/latest/meta_data.json")))["body"])
                assert md_b["uuid"] == b["id"] and md_b["public_keys"] == {}
                got = await ask(guests["a"], get("/openstack/latest/user_data"),
                                get("/openstack/2018-08-27/network_data.json"),
                                get("/openstack/latest/vendor_data2.json"),
                                get("/openstack"),
                                get("/latest/meta-data/instance-id"),
                                get("/2009-04-04/meta-data/public-keys/"),
                                get("/2009-04-04/meta-data/public-keys/0/openssh-key"),
                                get("/latest/meta-data/local-ipv4"),
                                get("/latest/user-data"))
                assert [g["status"] for g in got] == [200] * 9, got
                assert got[0]["body"].encode() == script_a
                network_data = json.loads(got[1]["body"])
                assert network_data["links"][0]["ethernet_mac_address"] == ports["a"]["mac_address"]
                assert json.loads(got[2]["body"]) == {}
                assert "2018-08-27" in got[3]["body"].split("\n")
                assert got[4]["body"] == "i-" + a["id"].replace("-", "")[:8]
                assert got[5]["body"] == "0=mdkey"
                assert got[6]["body"] == kp["public_key"]
                assert got[7]["body"] == ip["a"]
                assert (await ask_one(guests["b"], get("/openstack/latest/user_data")))["body"] == "data-of-b"
                assert (await ask_one(guests["c"], get("/openstack/latest/user_data")))["status"] == 404

                # An impostor: c, on a's network, uses a's address as its source.
                # Anti-spoofing drops it before it reaches the service.
                added = await run_in_namespace(guests["c"], ["busybox", "ip", "addr", "add",
                                                             f"{ip['a']}/24", "dev", "eth0"])
                assert added.returncode == 0, added.stderr
                spoofed = await ask_one(guests["c"], get("/openstack/latest/meta_data.json"),
                                        source=ip["a"])
                assert spoofed["status"] == 0, spoofed
                await run_in_namespace(guests["c"], ["busybox", "ip", "addr", "del",
                                                     f"{ip['a']}/24", "dev", "eth0"])
                # Once c's port may also use a's address (an allowed pair), neither can prove
                # who they are from it, so a's documents go to no one.
                await admin.put(f"{N}/ports/{ports['c']['id']}", {"port": {
                    "allowed_address_pairs": [{"ip_address": ip["a"]}]}})
                assert (await ask_one(guests["a"], get("/openstack/latest/meta_data.json")))["status"] == 404
                await admin.put(f"{N}/ports/{ports['c']['id']}", {"port": {"allowed_address_pairs": []}})
                assert (await ask_one(guests["a"], get("/openstack/latest/meta_data.json")))["status"] == 200

                # Hostile requests: proxying, oversized headers, too many headers, big bodies.
                hostile = await ask(
                    guests["a"],
                    f"GET http://127.0.0.1:{config.api.listen.rsplit(':', 1)[1]}/identity/v3 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
                    b"CONNECT 127.0.0.1:5000 HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n",
                    b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"p" * 5000,
                    b"DELETE /openstack/latest/meta_data.json HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /openstack/latest/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
                )
                assert [h["status"] for h in hostile] == [400, 405, 431, 431, 413, 405, 404], hostile
                # The password file takes one POST, then keeps it.
                posted = await ask(guests["a"],
                                   b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecret",
                                   b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nother",
                                   get("/openstack/latest/password"))
                assert [p["status"] for p in posted] == [200, 409, 200] and posted[2]["body"] == "secret"
                # The owner reads it through Nova's os-server-password, and clearing it lets
                # the guest post again.
                pw = f"{C}/servers/{a['id']}/os-server-password"
                assert (await admin.get(pw, headers=H))["password"] == "secret"
                await admin.delete(pw, headers=H)
                assert (await admin.get(pw, headers=H))["password"] == ""
                again = await ask_one(guests["a"], b"POST /openstack/latest/password HTTP/1.1\r\n"
                                      b"Host: x\r\nContent-Length: 3\r\n\r\nnew")
                assert again["status"] == 200

                # A flooding guest is held back; its neighbour on the same bridge is not.
                flood = await ask(guests["a"], *[get("/latest/meta-data/instance-id")] * 150)
                codes = [f["status"] for f in flood]
                assert codes[0] == 200 and 429 in codes and set(codes) == {200, 429}, codes
                assert (await ask_one(guests["c"], get("/latest/meta-data/instance-id")))["status"] == 200

                # The service listens in the namespace only: nothing on the host's port 80 at
                # the metadata address, and a listener per bridge inside.
                listening = await run_in_namespace(config.network.namespace,
                                                   ["busybox", "netstat", "-ltn"])
                assert listening.stdout.decode().count(f"{MD}:80") >= 2
                with open("/proc/net/tcp") as f:  # the root namespace (this thread's)
                    assert "FEA9FEA9:0050" not in f.read()

                # A deleted server's guest gets nothing.
                await admin.delete(f"{C}/servers/{b['id']}", headers=H)

                async def gone():
                    try:
                        await admin.get(f"{C}/servers/{b['id']}", headers=H)
                    except Exception:
                        return True
                await wait_for(gone, timeout=30)
                after = await ask_one(guests["b"], get("/openstack/latest/meta_data.json"))
                assert after["status"] in (0, 404) and b["id"] not in after["body"], after
                stats = daemon.appliance.ctx.components.network.manager.metadata.server.stats
                assert stats["errors"] == 0 and stats["rate_limited"] >= 1
            finally:
                await admin.close()
    finally:
        for gp in planes:
            await gp.delete_namespace()
    assert [ns for ns in list_namespaces() if tag in ns or ns == config.network.namespace] == []
