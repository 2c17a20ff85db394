"""Nova's view of Neutron: a server's security groups are its ports' (add/removeSecurityGroup
change the ports, so the firewall follows), and its floating IPs appear in `addresses` and in
`GET /servers/{id}/ips`, as upstream Nova shows them."""
from __future__ import annotations

import pytest

from appliance.errors import BadRequest, NotFound
from tests.api.compute.conftest import wait_status
from tests.api.network.conftest import needs_root
from tests.compute_support import COMPONENTS as IMAGE_COMPONENTS, TEST_IMAGE_ID, seed_test_image
from tests.daemon import InProcessDaemon, wait_for, write_config

pytestmark = needs_root
NETWORK = "network"
C, N = "/compute/v2.1", "/network/v2.0"


@pytest.fixture
async def cloud(tmp_path):
    _, config = write_config(tmp_path, components=["images", "network", "compute"])
    async with InProcessDaemon(config, components=[IMAGE_COMPONENTS[0], NETWORK,
                                                   *IMAGE_COMPONENTS[1:]]) as daemon:
        client = await daemon.admin_client()
        try:
            await seed_test_image(client, tmp_path)
            yield daemon, client
        finally:
            await client.close()


async def _boot(client, name, **extra):
    sid = (await client.post(f"{C}/servers", {"server": {
        "name": name, "imageRef": TEST_IMAGE_ID, "flavorRef": "1", **extra}}))["server"]["id"]
    await wait_status(client, sid, "ACTIVE")
    return sid


def _port_groups(daemon, sid):
    net = daemon.appliance.ctx.components.network.manager
    (port,) = net.ports.list(lambda p: p.device_id == sid)
    return {net.security_groups.require(g).name for g in port.security_groups}


async def test_security_groups_follow_the_ports(cloud):
    daemon, client = cloud
    await client.post(f"{N}/security-groups", {"security_group": {"name": "web"}})
    sid = await _boot(client, "sg-vm", security_groups=[{"name": "web"}])
    assert _port_groups(daemon, sid) == {"web"}
    action = f"{C}/servers/{sid}/action"
    await client.post(action, {"addSecurityGroup": {"name": "default"}})
    assert _port_groups(daemon, sid) == {"web", "default"}
    shown = (await client.get(f"{C}/servers/{sid}"))["server"]
    assert {g["name"] for g in shown["security_groups"]} == {"web", "default"}
    legacy = (await client.get(f"{C}/servers/{sid}/os-security-groups"))["security_groups"]
    assert {g["name"] for g in legacy} == {"web", "default"}
    default = next(g for g in legacy if g["name"] == "default")
    assert default["rules"] and all(r["parent_group_id"] == default["id"]
                                    for r in default["rules"])
    with pytest.raises(BadRequest, match="already associated"):
        await client.post(action, {"addSecurityGroup": {"name": "web"}})
    await client.post(action, {"removeSecurityGroup": {"name": "web"}})
    assert _port_groups(daemon, sid) == {"default"}
    assert [g["name"] for g in (await client.get(f"{C}/servers/{sid}"))["server"][
        "security_groups"]] == ["default"]
    with pytest.raises(BadRequest, match="not associated"):
        await client.post(action, {"removeSecurityGroup": {"name": "web"}})
    with pytest.raises(NotFound):
        await client.post(action, {"addSecurityGroup": {"name": "no-such-group"}})
    for bad in ({}, {"name": ""}, {"name": 5}, {"name": "x" * 256}):
        with pytest.raises(BadRequest, match="name"):
            await client.post(action, {"addSecurityGroup": bad})


async def test_floating_ips_appear_in_addresses_and_ips(cloud):
    daemon, client = cloud
    sid = await _boot(client, "fip-vm")
    private = (await client.get(f"{N}/networks?name=private"))["networks"][0]
    ext = (await client.post(f"{N}/networks", {"network": {
        "name": "public", "router:external": True}}))["network"]
    await client.post(f"{N}/subnets", {"subnet": {"network_id": ext["id"], "ip_version": 4,
                                                  "cidr": "203.0.113.0/24"}})
    router = (await client.post(f"{N}/routers", {"router": {
        "name": "r", "external_gateway_info": {"network_id": ext["id"]}}}))["router"]
    await client.put(f"{N}/routers/{router['id']}/add_router_interface",
                     {"subnet_id": private["subnets"][0]})
    (port,) = (await client.get(f"{N}/ports?device_id={sid}"))["ports"]
    fip = (await client.post(f"{N}/floatingips", {"floatingip": {
        "floating_network_id": ext["id"], "port_id": port["id"]}}))["floatingip"]
    fixed = port["fixed_ips"][0]["ip_address"]
    addrs = (await client.get(f"{C}/servers/{sid}"))["server"]["addresses"]["private"]
    assert [(a["addr"], a["OS-EXT-IPS:type"]) for a in addrs] == [
        (fixed, "fixed"), (fip["floating_ip_address"], "floating")]
    assert addrs[1]["OS-EXT-IPS-MAC:mac_addr"] == port["mac_address"]
    detail = (await client.get(f"{C}/servers/detail"))["servers"]
    assert [a["addr"] for s in detail if s["id"] == sid for a in s["addresses"]["private"]] == [
        fixed, fip["floating_ip_address"]]
    ips = (await client.get(f"{C}/servers/{sid}/ips"))["addresses"]
    assert ips == {"private": [{"version": 4, "addr": fixed},
                               {"version": 4, "addr": fip["floating_ip_address"]}]}
    assert (await client.get(f"{C}/servers/{sid}/ips/private"))["private"] == ips["private"]
    with pytest.raises(NotFound):
        await client.get(f"{C}/servers/{sid}/ips/no-such-network")
    await client.put(f"{N}/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    addrs = (await client.get(f"{C}/servers/{sid}"))["server"]["addresses"]["private"]
    assert [a["OS-EXT-IPS:type"] for a in addrs] == ["fixed"]


async def _listed_equals_shown(client, sid, version="2.60"):
    """The server's body in /servers/detail (kept between listings) is the one GET
    /servers/{id} builds afresh; returns it."""
    hdr = {"OpenStack-API-Version": f"compute {version}"}
    listed = [s for s in (await client.get(f"{C}/servers/detail", headers=hdr))["servers"]
              if s["id"] == sid]
    shown = (await client.get(f"{C}/servers/{sid}", headers=hdr))["server"]
    assert listed == [shown]
    return shown


async def test_server_listing_shows_each_change_at_the_very_next_get(cloud):
    daemon, client = cloud
    await client.post(f"{N}/security-groups", {"security_group": {"name": "web"}})
    sid = await _boot(client, "cached-vm")
    other = await _boot(client, "bystander")
    for version in ("2.1", "2.47", "2.60"):  # every way of showing it is built, then kept
        await _listed_equals_shown(client, sid, version)
    before = await _listed_equals_shown(client, other)

    await client.post(f"{C}/servers/{sid}/metadata", {"metadata": {"role": "db"}})
    assert (await _listed_equals_shown(client, sid))["metadata"] == {"role": "db"}
    await client.put(f"{C}/servers/{sid}", {"server": {"name": "renamed"}})
    assert (await _listed_equals_shown(client, sid))["name"] == "renamed"
    await client.put(f"{C}/servers/{sid}/tags/blue", None,
                     headers={"OpenStack-API-Version": "compute 2.60"})
    assert (await _listed_equals_shown(client, sid))["tags"] == ["blue"]

    await client.post(f"{C}/servers/{sid}/action", {"os-stop": None})
    await wait_status(client, sid, "SHUTOFF")
    assert (await _listed_equals_shown(client, sid))["status"] == "SHUTOFF"
    assert (await _listed_equals_shown(client, sid, "2.1"))["status"] == "SHUTOFF"

    # the port's groups change (a NIC hot-plug the test driver cannot do)
    await client.post(f"{C}/servers/{sid}/action", {"addSecurityGroup": {"name": "web"}})
    assert {g["name"] for g in (await _listed_equals_shown(client, sid))["security_groups"]} \
        == {"default", "web"}

    # a floating IP: held by the network, not by the server's record
    private = (await client.get(f"{N}/networks?name=private"))["networks"][0]
    ext = (await client.post(f"{N}/networks", {"network": {
        "name": "public", "router:external": True}}))["network"]
    await client.post(f"{N}/subnets", {"subnet": {"network_id": ext["id"], "ip_version": 4,
                                                  "cidr": "203.0.113.0/24"}})
    router = (await client.post(f"{N}/routers", {"router": {
        "name": "r", "external_gateway_info": {"network_id": ext["id"]}}}))["router"]
    await client.put(f"{N}/routers/{router['id']}/add_router_interface",
                     {"subnet_id": private["subnets"][0]})
    port = next(p for p in (await client.get(f"{N}/ports?device_id={sid}"))["ports"]
                if p["network_id"] == private["id"])
    fip = (await client.post(f"{N}/floatingips", {"floatingip": {
        "floating_network_id": ext["id"], "port_id": port["id"]}}))["floatingip"]
    addrs = (await _listed_equals_shown(client, sid))["addresses"]["private"]
    assert fip["floating_ip_address"] in [a["addr"] for a in addrs]
    await client.put(f"{N}/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    addrs = (await _listed_equals_shown(client, sid))["addresses"]["private"]
    assert [a["OS-EXT-IPS:type"] for a in addrs] == ["fixed"]

    await client.delete(f"{C}/servers/{sid}")

    async def gone():
        listed = (await client.get(f"{C}/servers/detail"))["servers"]
        return sid not in [s["id"] for s in listed]
    await wait_for(gone, timeout=30, interval=0.05)
    assert await _listed_equals_shown(client, other) == before  # untouched throughout


async def test_networks_none_boots_a_server_without_a_nic_and_auto_plugs_the_default(cloud):
    """Nova's `networks: "none"`: ACTIVE with no port and no addresses (it went to ERROR,
    "Bad network request: {'none': True}", whenever the network service ran); `auto` and
    nothing at all still plug the project's network."""
    daemon, client = cloud
    net = daemon.appliance.ctx.components.network.manager
    headers = {"OpenStack-API-Version": "compute 2.37"}
    sid = (await client.post(f"{C}/servers", {"server": {
        "name": "no-nic", "imageRef": TEST_IMAGE_ID, "flavorRef": "1", "networks": "none"}},
        headers=headers))["server"]["id"]
    shown = await wait_status(client, sid, "ACTIVE", "ERROR")
    assert shown["status"] == "ACTIVE", shown.get("fault")
    assert shown["addresses"] == {} and net.ports.list(lambda p: p.device_id == sid) == []
    auto = (await client.post(f"{C}/servers", {"server": {
        "name": "auto-nic", "imageRef": TEST_IMAGE_ID, "flavorRef": "1", "networks": "auto"}},
        headers=headers))["server"]["id"]
    await wait_status(client, auto, "ACTIVE")
    assert len(net.ports.list(lambda p: p.device_id == auto)) == 1
