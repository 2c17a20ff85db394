"""Real TCG guests on a monostack network: the images, network and compute components in one
daemon on qemu:///system.

A guest booted on the default private network gets exactly its port's address from the
in-process DHCP server (its console prints the lease) and the lease shows in the admin listing
with the instance name as host name. Every start re-plugs the tap (libvirt makes a new one in
the root namespace each time qemu starts): after stop/start and after a hard reboot the guest
gets its lease again. Two guests in the default security group ping each other (same-group
ingress), typed on the serial console websocket. A qemu restarted behind compute's back
(libvirt directly) is plugged from the lifecycle event.
"""
from __future__ import annotations

import asyncio

import libvirt
import pytest

from appliance.errors import NotFound
from appliance.network.netlink import DataPlane
from tests.daemon import InProcessDaemon, remove_namespace, wait_for, write_config
from tests.integration.realguest import (
    REAL_GUEST_MARKS,
    URI,
    C,
    Console,
    N,
    boot,
    console_text,
    destroy_domains,
    fixed_ip,
    guest_image_or_skip,
    libvirt_reachable,
    make_flavor,
    new_test_dir,
    real_config_extra,
    remove_tree,
    upload_guest_image,
    wait_leases,
    wait_status,
)

pytestmark = REAL_GUEST_MARKS
COMPONENTS = ["images", "network", "compute"]


@pytest.fixture
async def real_daemon(tmp_path):
    if not libvirt_reachable():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    image = guest_image_or_skip()
    base = new_test_dir()
    _, config = write_config(tmp_path, components=COMPONENTS, extra=real_config_extra(base))
    made: list[str] = []
    try:
        async with InProcessDaemon(config) as daemon:
            client = await daemon.admin_client()
            try:
                image_id = await upload_guest_image(client, image)
                flavor_id = await make_flavor(client)
                yield daemon, client, image_id, flavor_id, made
            finally:
                manager = daemon.appliance.ctx.components.compute.manager
                for sid in made:  # never leak a domain, even when the test failed
                    try:
                        await manager.delete(sid)
                    except NotFound:
                        pass
                await manager.wait_idle(120)
                await client.close()
    finally:
        destroy_domains(made)
        remove_namespace(config)
        remove_tree(base)


def restart_domain_directly(uuid: str) -> None:
    conn = libvirt.open(URI)
    try:
        dom = conn.lookupByUUIDString(uuid)
        dom.destroy()
        dom.create()
    finally:
        conn.close()


async def tap_in_namespace(daemon, tap: str) -> bool:
    dp: DataPlane = daemon.appliance.ctx.components.network.manager.dp
    return tap in {p.name for p in await dp.list_ports()}


async def test_guest_gets_port_ip_replugged_on_every_start_and_pings_peer(real_daemon):
    daemon, client, image_id, flavor_id, made = real_daemon
    a = await boot(client, "net-guest-a", image_id, flavor_id, made)
    b = await boot(client, "net-guest-b", image_id, flavor_id, made)
    sa = await wait_status(client, a, "ACTIVE", "ERROR")
    sb = await wait_status(client, b, "ACTIVE", "ERROR")
    assert sa["status"] == sb["status"] == "ACTIVE", (sa.get("fault"), sb.get("fault"))
    ip_a, ip_b = fixed_ip(sa), fixed_ip(sb)
    assert ip_a != ip_b and ip_a.startswith("10.0.0.")

    # DHCP: exactly the port's address, router from the subnet
    leases_a = await wait_leases(client, a, 1)
    leases_b = await wait_leases(client, b, 1)
    assert leases_a == [(ip_a, "10.0.0.1", "none")]
    assert leases_b == [(ip_b, "10.0.0.1", "none")]
    ports = {p["device_id"]: p for p in (await client.get(f"{N}/ports"))["ports"]}
    assert ports[a]["status"] == "ACTIVE"
    mac_a = ports[a]["mac_address"]

    async def listed():
        leases = (await client.get(f"{N}/monostack-dhcp-leases"))["leases"]
        return [x for x in leases if x["mac"] == mac_a and x["state"] == "active"]
    (lease,) = await wait_for(listed, timeout=30)
    assert lease["ip"] == ip_a and lease["port_id"] == ports[a]["id"]
    assert lease["hostname"] == "net-guest-a"  # the instance name, from compute

    # No config drive: the guest configured itself from the metadata service, reached
    # through the option-121 route (the private subnet has no router), and reads only its own.
    text_a = await console_text(client, a)
    assert "metadata-source: metadata-service" in text_a, text_a
    assert "instance-name: net-guest-a" in text_a

    # same-group ingress: a and b (default security group) ping each other
    console = await Console.open(client, a)
    try:
        await console.run(f"ping -c 2 -W 3 {ip_b}", "2 packets received", timeout=60)
        await console.run("md_get() { printf 'GET %s HTTP/1.0\\r\\n\\r\\n' $1"
                          " | nc 169.254.169.254 80 | tail -n 1; echo; };"
                          " md_get /latest/meta-data/instance-id",
                          "i-" + a.replace("-", "")[:8], timeout=60)
        await console.run("ip route", "169.254.169.254 via 10.0.0.1", timeout=30)
        # An impostor: a takes b's address and asks again. Anti-spoofing drops its packets
        # (ARP and IPv4) before the service sees them, so b's identity is not a's to use.
        await console.run(
            f"ip addr flush dev eth0; ip addr add {ip_b}/24 dev eth0;"
            " ip route add 169.254.169.254 via 10.0.0.1;"
            " md_get /latest/meta-data/instance-id; echo IMPOS\"\"TOR-DONE",
            "IMPOSTOR-DONE", timeout=60)
        assert "i-" + b.replace("-", "")[:8] not in console.seen
        await console.run(
            f"ip addr flush dev eth0; ip addr add {ip_a}/24 dev eth0;"
            " ip route add 169.254.169.254 via 10.0.0.1; ip route add default via 10.0.0.1;"
            " md_get /latest/meta-data/instance-id; echo BA\"\"CK-DONE", "BACK-DONE", timeout=60)
        assert "i-" + a.replace("-", "")[:8] in console.seen  # (the command never names it)
    finally:
        await console.close()

    # stop/start: qemu exits (tap gone), starts again (new tap in the root namespace):
    # compute must plug it again, and the guest's DHCP works again
    tap_a = ports[a]["binding:vif_details"]["tap_name"]
    await client.post(f"{C}/servers/{a}/action", {"os-stop": None})
    await wait_status(client, a, "SHUTOFF")
    assert not await tap_in_namespace(daemon, tap_a)
    await client.post(f"{C}/servers/{a}/action", {"os-start": None})
    await wait_status(client, a, "ACTIVE")
    assert await tap_in_namespace(daemon, tap_a)
    assert (await wait_leases(client, a, 2))[1] == (ip_a, "10.0.0.1", "none")

    # hard reboot: a new qemu process, a new tap; plugged again
    await client.post(f"{C}/servers/{a}/action", {"reboot": {"type": "HARD"}})
    await wait_status(client, a, "ACTIVE")
    assert await tap_in_namespace(daemon, tap_a)
    assert (await wait_leases(client, a, 3))[2] == (ip_a, "10.0.0.1", "none")

    # qemu restarted behind compute's back (libvirt directly): the lifecycle event path plugs
    await asyncio.to_thread(restart_domain_directly, a)
    await wait_for(lambda: tap_in_namespace(daemon, tap_a), timeout=60)
    await wait_status(client, a, "ACTIVE")
    assert (await wait_leases(client, a, 4))[3] == (ip_a, "10.0.0.1", "none")

    # and b still reaches the rebooted a
    console = await Console.open(client, b)
    try:
        await console.run(f"ping -c 2 -W 3 {ip_a}", "2 packets received", timeout=60)
    finally:
        await console.close()
