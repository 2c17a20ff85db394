"""A simulated host reboot (issue 8): a real `monostack serve` with the images, network and
compute components on qemu:///system and real TCG guests.

Before: guest `a` ACTIVE with its DHCP lease, guest `b` stopped (SHUTOFF). The "reboot":
SIGTERM to the daemon, every domain of ours destroyed (qemu gone, definitions kept, as after a
power cut), the data-plane namespace deleted (a reboot empties every network namespace). Then
the daemon starts again — on a new API address, as after a host address change — and:

- the data plane is rebuilt from state before compute resumes guests: namespace, bridge with
  the gateway address, DHCP server, nftables rules;
- `a` is ACTIVE again (compute.resume_guests_on_start), its tap plugged, and the guest gets the
  same address again (the console log's second lease equals the first);
- `a`'s console works: a command typed on the remote-console websocket is answered;
- `b` stays SHUTOFF;
- only the advertised endpoints moved (they follow config.api), nothing in the guests did.
"""
from __future__ import annotations

import asyncio

import pytest

from appliance.network.firewall import list_ruleset
from appliance.network.netlink import DataPlane, list_namespaces
from tests.daemon import (
    ADMIN_PASSWORD,
    DaemonProcess,
    remove_namespace,
    run_init,
    write_config,
)
from tests.integration.realguest import (
    REAL_GUEST_MARKS,
    C,
    Console,
    boot,
    delete_servers_quietly,
    destroy_domains,
    domain_active,
    fixed_ip,
    guest_image_or_skip,
    libvirt_reachable,
    make_flavor,
    new_test_dir,
    real_config_extra,
    remove_tree,
    stop_domains,
    upload_guest_image,
    wait_leases,
    wait_status,
)

pytestmark = REAL_GUEST_MARKS
COMPONENTS = ["images", "network", "compute"]


async def login(daemon: DaemonProcess):
    client = daemon.client()
    await client.login("admin", ADMIN_PASSWORD, "admin")
    return client


async def test_host_reboot_resumes_active_guests_with_same_addresses_and_consoles(tmp_path):
    if not libvirt_reachable():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    image = guest_image_or_skip()
    base = new_test_dir()
    extra = real_config_extra(base)
    path, config = write_config(tmp_path, components=COMPONENTS, extra=extra)
    ns = config.network.namespace
    made: list[str] = []
    daemon = DaemonProcess(path, config)
    client = None
    try:
        run_init(path)
        daemon.start()
        client = await login(daemon)
        image_id = await upload_guest_image(client, image)
        flavor_id = await make_flavor(client)
        a = await boot(client, "reboot-a", image_id, flavor_id, made)
        b = await boot(client, "reboot-b", image_id, flavor_id, made)
        sa = await wait_status(client, a, "ACTIVE", "ERROR")
        sb = await wait_status(client, b, "ACTIVE", "ERROR")
        assert sa["status"] == sb["status"] == "ACTIVE", (sa.get("fault"), sb.get("fault"))
        ip_a = fixed_ip(sa)
        (first,) = await wait_leases(client, a, 1)
        assert first == (ip_a, "10.0.0.1", "none")
        await client.post(f"{C}/servers/{b}/action", {"os-stop": None})
        await wait_status(client, b, "SHUTOFF")
        old_catalog = (await client.get("/identity/v3/auth/catalog"))["catalog"]
        await client.close()
        client = None

        # --- the host goes down -----------------------------------------------------------
        assert daemon.stop(keep_namespace=True) == 0  # SIGTERM: a clean shutdown
        await asyncio.to_thread(stop_domains, made)
        assert not any(domain_active(u) for u in made)
        await DataPlane(ns).delete_namespace()
        assert ns not in list_namespaces()

        # --- and comes back, with a new API address -----------------------------------------
        path, config = write_config(tmp_path, components=COMPONENTS,
                                    extra={**extra, "network": {"namespace": ns}})
        assert config.api.base_url != daemon.config.api.base_url
        daemon = DaemonProcess(path, config)
        daemon.start(timeout=180)  # compute resumes guests before the API listens
        client = await login(daemon)

        assert ns in list_namespaces()
        bridges = await DataPlane(ns).list_bridges()
        assert [br.addresses for br in bridges] == [("10.0.0.1/24",)]
        tables = {i["table"]["name"] for i in (await list_ruleset(ns))["nftables"]
                  if "table" in i}
        assert tables == {"monostack", "monostack_spoof"}

        sa = await wait_status(client, a, "ACTIVE", "ERROR", "SHUTOFF")
        assert sa["status"] == "ACTIVE", sa.get("fault")
        assert fixed_ip(sa) == ip_a
        sb = await wait_status(client, b, "ACTIVE", "ERROR", "SHUTOFF")
        assert sb["status"] == "SHUTOFF"
        assert not domain_active(b)
        leases = await wait_leases(client, a, 2)
        assert leases[1] == first  # the same address from the rebuilt DHCP server

        console = await Console.open(client, a)
        try:
            await console.run("echo answer-$((6*7))", "answer-42", timeout=60)
        finally:
            await console.close()

        catalog = (await client.get("/identity/v3/auth/catalog"))["catalog"]
        urls = [e["url"] for s in catalog for e in s["endpoints"]]
        assert urls and all(u.startswith(config.api.base_url) for u in urls)
        assert [s["type"] for s in catalog] == [s["type"] for s in old_catalog]
    finally:
        if client is not None:
            await delete_servers_quietly(client, made)
            await client.close()
        daemon.stop()
        await asyncio.to_thread(destroy_domains, made)
        remove_namespace(config)
        remove_tree(base)
