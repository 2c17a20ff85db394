"""The Neutron v2.0 subset through the real API, on a real data-plane namespace."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from appliance.client import MonostackClient
from appliance.errors import BadRequest, Conflict, Forbidden, NotFound
from appliance.network.firewall import list_ruleset
from appliance.network.netlink import DataPlane
from tests.api.network.conftest import needs_root

pytestmark = needs_root
N = "/network/v2.0"

STD = {"id", "project_id", "tenant_id", "tags", "created_at", "updated_at", "revision_number",
       "description"}


async def _member(daemon, admin, name="mia", project="proj-b") -> MonostackClient:
    proj = (await admin.post("/v3/projects", {"project": {"name": project}}))["project"]
    user = (await admin.post("/v3/users", {"user": {"name": name, "password": "pw-" + name}}))["user"]
    role = (await admin.get("/v3/roles?name=member"))["roles"][0]
    await admin.put(f"/v3/projects/{proj['id']}/users/{user['id']}/roles/{role['id']}")
    client = MonostackClient(socket_path=daemon.config.api.socket)
    await client.login(name, "pw-" + name, project)
    return client


async def test_discovery_and_extensions(nadmin):
    versions = await nadmin.get("/network")
    assert versions["versions"][0]["id"] == "v2.0"
    assert versions["versions"][0]["links"][0]["rel"] == "self"
    exts = {e["alias"] for e in (await nadmin.get(f"{N}/extensions"))["extensions"]}
    assert {"security-group", "router", "external-net", "port-security", "allowed-address-pairs",
            "quotas", "extra_dhcp_opt", "standard-attr-tag"} <= exts
    assert (await nadmin.get(f"{N}/extensions/router"))["extension"]["alias"] == "router"
    with pytest.raises(NotFound):
        await nadmin.get(f"{N}/extensions/tag-ports-during-bulk-creation")


async def test_bootstrap_private_network_and_default_group(net_daemon, nadmin):
    nets = (await nadmin.get(f"{N}/networks?name=private"))["networks"]
    assert len(nets) == 1 and nets[0]["mtu"] == 1500 and STD <= set(nets[0])
    sn = (await nadmin.get(f"{N}/subnets?network_id={nets[0]['id']}"))["subnets"][0]
    assert sn["name"] == "private-subnet" and sn["cidr"] == "10.0.0.0/24"
    assert sn["gateway_ip"] == "10.0.0.1"
    assert sn["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert sn["dns_nameservers"] == [] and sn["host_routes"] == []
    groups = (await nadmin.get(f"{N}/security-groups"))["security_groups"]
    default = [g for g in groups if g["name"] == "default"]
    assert len(default) == 1
    rules = default[0]["security_group_rules"]
    assert {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in rules} == {
        ("egress", "IPv4", None), ("egress", "IPv6", None),
        ("ingress", "IPv4", default[0]["id"]), ("ingress", "IPv6", default[0]["id"])}
    # the data plane: one bridge with the gateway address
    dp = DataPlane(net_daemon.config.network.namespace)
    try:
        bridges = await dp.list_bridges()
        assert [b.addresses for b in bridges] == [("10.0.0.1/24",)]
    finally:
        await dp.close()


async def test_network_subnet_port_crud_shapes(nadmin):
    net = (await nadmin.post(f"{N}/networks", {"network": {"name": "n1", "admin_state_up": True}}))["network"]
    assert net["subnets"] == [] and net["router:external"] is False and STD <= set(net)
    sn = (await nadmin.post(f"{N}/subnets", {"subnet": {
        "name": "s1", "network_id": net["id"], "ip_version": 4, "cidr": "10.1.0.0/24",
        "dns_nameservers": ["10.1.0.2"],
        "host_routes": [{"destination": "169.254.169.254/32", "nexthop": "10.1.0.3"}]}}))["subnet"]
    assert sn["gateway_ip"] == "10.1.0.1" and sn["allocation_pools"][0]["start"] == "10.1.0.2"
    assert (await nadmin.get(f"{N}/networks/{net['id']}"))["network"]["subnets"] == [sn["id"]]
    port = (await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"], "name": "p1",
                                                      "admin_state_up": True}}))["port"]
    assert port["mac_address"].startswith("fa:16:3e:")
    assert port["fixed_ips"] == [{"subnet_id": sn["id"], "ip_address": "10.1.0.2"}]
    assert port["allowed_address_pairs"] == [] and port["port_security_enabled"] is True
    assert len(port["security_groups"]) == 1 and STD <= set(port)
    # a chosen address, then a duplicate of it
    p2 = (await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"], "fixed_ips": [
        {"subnet_id": sn["id"], "ip_address": "10.1.0.50"}]}}))["port"]
    assert p2["fixed_ips"][0]["ip_address"] == "10.1.0.50"
    with pytest.raises(Conflict):
        await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"], "fixed_ips": [
            {"ip_address": "10.1.0.50"}]}})
    with pytest.raises(Conflict):  # the gateway is not for guests
        await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"], "fixed_ips": [
            {"ip_address": "10.1.0.1"}]}})
    with pytest.raises(Conflict):  # MAC in use on the network
        await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"],
                                                  "mac_address": port["mac_address"]}})
    # filters: several values, fixed_ips, device_id
    found = (await nadmin.get(f"{N}/ports?name=p1&name=nope"))["ports"]
    assert [p["id"] for p in found] == [port["id"]]
    found = (await nadmin.get(f"{N}/ports?fixed_ips=ip_address%3D10.1.0.50"))["ports"]
    assert [p["id"] for p in found] == [p2["id"]]
    upd = (await nadmin.put(f"{N}/ports/{p2['id']}", {"port": {
        "device_id": "dev-1", "allowed_address_pairs": [{"ip_address": "10.1.0.200"}]}}))["port"]
    assert upd["revision_number"] == 1 and upd["allowed_address_pairs"][0]["mac_address"] == p2["mac_address"]
    assert [p["id"] for p in (await nadmin.get(f"{N}/ports?device_id=dev-1"))["ports"]] == [p2["id"]]
    with pytest.raises(Conflict):  # port security off while groups are set
        await nadmin.put(f"{N}/ports/{port['id']}", {"port": {"port_security_enabled": False}})
    off = (await nadmin.put(f"{N}/ports/{port['id']}", {"port": {
        "port_security_enabled": False, "security_groups": []}}))["port"]
    assert off["port_security_enabled"] is False and off["security_groups"] == []
    # the network cannot go while ports use it
    with pytest.raises(Conflict):
        await nadmin.delete(f"{N}/networks/{net['id']}")
    with pytest.raises(Conflict):
        await nadmin.delete(f"{N}/subnets/{sn['id']}")
    for p in (port, p2):
        await nadmin.delete(f"{N}/ports/{p['id']}")
    await nadmin.delete(f"{N}/subnets/{sn['id']}")
    await nadmin.delete(f"{N}/networks/{net['id']}")
    with pytest.raises(NotFound):
        await nadmin.get(f"{N}/networks/{net['id']}")
    with pytest.raises(NotFound):
        await nadmin.get(f"{N}/networks/n1")  # name lookups go through ?name=


async def test_subnet_validation(nadmin):
    net = (await nadmin.post(f"{N}/networks", {"network": {"name": "v"}}))["network"]
    for body in ({"cidr": "10.2.0.0/33"}, {"cidr": "nonsense"}, {"cidr": "fd00::/64"},
                 {"cidr": "10.2.0.0/24", "gateway_ip": "10.3.0.1"},
                 {"cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.1.1", "end": "10.2.1.9"}]}):
        with pytest.raises(BadRequest):
            await nadmin.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4, **body}})
    # no gateway: the DHCP server takes the first address, guests start after it
    sn = (await nadmin.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                        "cidr": "10.2.0.0/29", "gateway_ip": None}}))["subnet"]
    assert sn["gateway_ip"] is None and sn["allocation_pools"] == [{"start": "10.2.0.2", "end": "10.2.0.6"}]
    with pytest.raises(BadRequest):  # overlapping subnet on the same network
        await nadmin.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                      "cidr": "10.2.0.0/24"}})
    # exhaustion: five addresses, then a clear conflict
    for _ in range(5):
        await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"]}})
    with pytest.raises(Conflict, match="No more IP addresses"):
        await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"]}})


async def test_ipam_no_duplicates_under_50_concurrent_creates(nadmin):
    net = (await nadmin.post(f"{N}/networks", {"network": {"name": "busy"}}))["network"]
    await nadmin.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.4.0.0/24"}})
    ports = await asyncio.gather(*[nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"],
                                                                       "name": f"c{i}"}})
                                   for i in range(50)])
    ips = [p["port"]["fixed_ips"][0]["ip_address"] for p in ports]
    macs = [p["port"]["mac_address"] for p in ports]
    assert len(set(ips)) == 50 and len(set(macs)) == 50
    assert all(ipaddress.IPv4Address(ip) in ipaddress.IPv4Network("10.4.0.0/24") for ip in ips)
    assert sorted(ipaddress.IPv4Address(ip) for ip in ips)[-1] == ipaddress.IPv4Address("10.4.0.51")
    listed = (await nadmin.get(f"{N}/ports?network_id={net['id']}"))["ports"]
    assert len(listed) == 50


async def test_mac_generation_never_collides(net_daemon):
    from appliance.network.ipam import generate_mac
    import random
    rng = random.Random(7)
    existing = {generate_mac(set(), random.Random(7))}
    # the same seed would give the same first MAC: the check must step past it
    assert generate_mac(existing, rng) not in existing


async def test_quotas(net_daemon, nadmin):
    member = await _member(net_daemon, nadmin)
    try:
        pid = member.session.project_id
        q = (await member.get(f"{N}/quotas/{pid}"))["quota"]
        assert q["network"] == 100 and q["port"] == 500
        with pytest.raises(Forbidden):
            await member.put(f"{N}/quotas/{pid}", {"quota": {"network": 1}})
        assert (await nadmin.put(f"{N}/quotas/{pid}", {"quota": {"network": 1, "port": 2}}))["quota"]["network"] == 1
        net = (await member.post(f"{N}/networks", {"network": {"name": "mine"}}))["network"]
        with pytest.raises(Conflict, match="Quota exceeded"):
            await member.post(f"{N}/networks", {"network": {"name": "second"}})
        await member.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                      "cidr": "10.5.0.0/24"}})
        for _ in range(2):
            await member.post(f"{N}/ports", {"port": {"network_id": net["id"]}})
        with pytest.raises(Conflict, match="Quota exceeded"):
            await member.post(f"{N}/ports", {"port": {"network_id": net["id"]}})
        details = (await member.get(f"{N}/quotas/{pid}/details"))["quota"]
        assert details["port"] == {"limit": 2, "used": 2, "reserved": 0}
        with pytest.raises(Forbidden):
            await member.get(f"{N}/quotas/{nadmin.session.project_id}")
        await nadmin.delete(f"{N}/quotas/{pid}")
        assert (await member.get(f"{N}/quotas/{pid}"))["quota"]["network"] == 100
    finally:
        await member.close()


async def test_projects_are_isolated_and_external_is_admin_only(net_daemon, nadmin):
    member = await _member(net_daemon, nadmin, "otto", "proj-o")
    try:
        with pytest.raises(Forbidden):
            await member.post(f"{N}/networks", {"network": {"name": "x", "router:external": True}})
        with pytest.raises(Forbidden):
            await member.post(f"{N}/networks", {"network": {"name": "x", "shared": True}})
        ext = (await nadmin.post(f"{N}/networks", {"network": {"name": "public", "router:external": True}}))["network"]
        shared = (await nadmin.post(f"{N}/networks", {"network": {"name": "common", "shared": True}}))["network"]
        names = {n["name"] for n in (await member.get(f"{N}/networks"))["networks"]}
        assert names == {"public", "common"}  # not the admin's private network
        private = (await nadmin.get(f"{N}/networks?name=private"))["networks"][0]
        with pytest.raises(NotFound):
            await member.get(f"{N}/networks/{private['id']}")
        with pytest.raises(NotFound):
            await member.post(f"{N}/ports", {"port": {"network_id": private["id"]}})
        with pytest.raises(Forbidden):
            await member.delete(f"{N}/networks/{ext['id']}")
        with pytest.raises(Forbidden):
            await member.post(f"{N}/networks", {"network": {"name": "y", "project_id": nadmin.session.project_id}})
        # the member's own default group appears on first look, separate from the admin's
        groups = (await member.get(f"{N}/security-groups"))["security_groups"]
        assert [g["name"] for g in groups] == ["default"]
        assert groups[0]["project_id"] == member.session.project_id
        admin_ports = (await nadmin.post(f"{N}/ports", {"port": {"network_id": private["id"]}}))["port"]
        assert (await member.get(f"{N}/ports"))["ports"] == []
        with pytest.raises(NotFound):
            await member.delete(f"{N}/ports/{admin_ports['id']}")
        # shared network: the member may plug a port into it
        await nadmin.post(f"{N}/subnets", {"subnet": {"network_id": shared["id"], "ip_version": 4,
                                                      "cidr": "10.6.0.0/24"}})
        mine = (await member.post(f"{N}/ports", {"port": {"network_id": shared["id"]}}))["port"]
        assert mine["project_id"] == member.session.project_id
        assert mine["security_groups"] == [groups[0]["id"]]
        # lease listing is admin only
        with pytest.raises(Forbidden):
            await member.get(f"{N}/monostack-dhcp-leases")
        assert (await nadmin.get(f"{N}/monostack-dhcp-leases"))["leases"] == []
    finally:
        await member.close()


async def test_security_groups_and_rules(net_daemon, nadmin):
    sg = (await nadmin.post(f"{N}/security-groups", {"security_group": {"name": "web", "description": "web"}}))["security_group"]
    assert {r["direction"] for r in sg["security_group_rules"]} == {"egress"} and STD <= set(sg)
    rule = (await nadmin.post(f"{N}/security-group-rules", {"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0"}}))["security_group_rule"]
    assert rule["port_range_min"] == 22 and rule["protocol"] == "tcp"
    with pytest.raises(Conflict):
        await nadmin.post(f"{N}/security-group-rules", {"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22}})
    for bad in ({"direction": "sideways"}, {"direction": "ingress", "protocol": "tcp",
                                            "port_range_min": 90, "port_range_max": 80},
                {"direction": "ingress", "protocol": "gre", "port_range_min": 1}):
        with pytest.raises(BadRequest):
            await nadmin.post(f"{N}/security-group-rules", {"security_group_rule": {
                "security_group_id": sg["id"], **bad}})
    shown = (await nadmin.get(f"{N}/security-groups/{sg['id']}"))["security_group"]
    assert rule["id"] in {r["id"] for r in shown["security_group_rules"]}
    # the rule is in the kernel: a port in the group gets a chain with tcp dport 22
    net = (await nadmin.get(f"{N}/networks?name=private"))["networks"][0]
    port = (await nadmin.post(f"{N}/ports", {"port": {"network_id": net["id"],
                                                      "security_groups": [sg["id"]]}}))["port"]
    ruleset = await list_ruleset(net_daemon.config.network.namespace)
    # the chain the ingress map sends the port's address to (its groups' chain)
    address = port["fixed_ips"][0]["ip_address"]
    ingress = next(i["map"] for i in ruleset["nftables"]
                   if "map" in i and i["map"]["name"] == "sg_ingress")
    chain, = [target["jump"]["target"] for key, target in ingress.get("elem", [])
              if key["concat"][1] == address]
    exprs = [i["rule"]["expr"] for i in ruleset["nftables"]
             if "rule" in i and i["rule"]["chain"] == chain]
    assert any(e.get("match", {}).get("right") == 22 for expr in exprs for e in expr), exprs
    with pytest.raises(Conflict):
        await nadmin.delete(f"{N}/security-groups/{sg['id']}")
    await nadmin.delete(f"{N}/ports/{port['id']}")
    await nadmin.delete(f"{N}/security-group-rules/{rule['id']}")
    await nadmin.delete(f"{N}/security-groups/{sg['id']}")
    default = (await nadmin.get(f"{N}/security-groups?name=default"))["security_groups"][0]
    member = await _member(net_daemon, nadmin, "sam", "proj-s")
    try:
        await member.get(f"{N}/security-groups")
        mine = (await member.get(f"{N}/security-groups?name=default"))["security_groups"][0]
        with pytest.raises(Conflict):
            await member.delete(f"{N}/security-groups/{mine['id']}")
        with pytest.raises(NotFound):
            await member.get(f"{N}/security-groups/{default['id']}")
    finally:
        await member.close()


async def test_routers_and_floating_ips(net_daemon, nadmin):
    ext = (await nadmin.post(f"{N}/networks", {"network": {"name": "public", "router:external": True}}))["network"]
    private = (await nadmin.get(f"{N}/networks?name=private"))["networks"][0]
    sn = private["subnets"][0]
    router = (await nadmin.post(f"{N}/routers", {"router": {"name": "r1", "admin_state_up": True}}))["router"]
    assert router["external_gateway_info"] is None and router["routes"] == []
    router = (await nadmin.put(f"{N}/routers/{router['id']}", {"router": {
        "external_gateway_info": {"network_id": ext["id"]}}}))["router"]
    gw = router["external_gateway_info"]
    assert gw["network_id"] == ext["id"] and gw["enable_snat"] is True
    # the external subnet came from config.network.external_cidr
    ext_sn = (await nadmin.get(f"{N}/subnets?network_id={ext['id']}"))["subnets"][0]
    assert ext_sn["cidr"] == net_daemon.config.network.external_cidr
    gw_ip = gw["external_fixed_ips"][0]["ip_address"]
    assert ipaddress.IPv4Address(gw_ip) in ipaddress.IPv4Network(ext_sn["cidr"])
    iface = await nadmin.put(f"{N}/routers/{router['id']}/add_router_interface", {"subnet_id": sn})
    assert iface["subnet_id"] == sn and iface["port_id"]
    ports = (await nadmin.get(f"{N}/ports?device_id={router['id']}"))["ports"]
    assert {p["device_owner"] for p in ports} == {"network:router_interface", "network:router_gateway"}
    with pytest.raises(BadRequest):
        await nadmin.put(f"{N}/routers/{router['id']}/add_router_interface", {"subnet_id": sn})
    with pytest.raises(Conflict):
        await nadmin.delete(f"{N}/ports/{iface['port_id']}")
    # a floating IP for a guest port
    guest = (await nadmin.post(f"{N}/ports", {"port": {"network_id": private["id"]}}))["port"]
    fip = (await nadmin.post(f"{N}/floatingips", {"floatingip": {"floating_network_id": ext["id"]}}))["floatingip"]
    assert fip["port_id"] is None and fip["status"] == "DOWN" and STD <= set(fip)
    fip = (await nadmin.put(f"{N}/floatingips/{fip['id']}", {"floatingip": {"port_id": guest["id"]}}))["floatingip"]
    assert fip["fixed_ip_address"] == guest["fixed_ips"][0]["ip_address"]
    assert fip["router_id"] == router["id"] and fip["status"] == "ACTIVE"
    # the kernel has the NAT and the addresses on the external bridge
    ruleset = await list_ruleset(net_daemon.config.network.namespace)
    text = str(ruleset)
    assert fip["floating_ip_address"] in text and gw_ip in text
    dp = DataPlane(net_daemon.config.network.namespace)
    try:
        ext_bridge = [b for b in await dp.list_bridges() if b.name == "msb" + ext["id"].replace("-", "")[:11]][0]
        assert f"{fip['floating_ip_address']}/32" in ext_bridge.addresses
        assert f"{gw_ip}/32" in ext_bridge.addresses
    finally:
        await dp.close()
    with pytest.raises(Conflict):  # the FIP needs the interface
        await nadmin.put(f"{N}/routers/{router['id']}/remove_router_interface", {"subnet_id": sn})
    fip = (await nadmin.put(f"{N}/floatingips/{fip['id']}", {"floatingip": {"port_id": None}}))["floatingip"]
    assert fip["port_id"] is None and fip["fixed_ip_address"] is None
    await nadmin.put(f"{N}/routers/{router['id']}/remove_router_interface", {"subnet_id": sn})
    with pytest.raises(NotFound):  # no router connects the subnet now
        await nadmin.put(f"{N}/floatingips/{fip['id']}", {"floatingip": {"port_id": guest["id"]}})
    await nadmin.delete(f"{N}/floatingips/{fip['id']}")
    await nadmin.delete(f"{N}/routers/{router['id']}")
    assert (await nadmin.get(f"{N}/ports?device_owner=network:router_gateway"))["ports"] == []


async def test_compute_seam_allocate_plug_deallocate(net_daemon, nadmin):
    comp = net_daemon.appliance.ctx.components.network
    project = nadmin.session.project_id
    first = await comp.allocate_ports("inst-1", project, [])
    assert len(first) == 1 and first[0].network_name == "private"
    assert first[0].tap_name == "tap" + first[0].port_id[:11] and first[0].mtu == 1500
    assert first[0].fixed_ips == ["10.0.0.2"]
    again = await comp.allocate_ports("inst-1", project, [])
    assert [p.port_id for p in again] == [first[0].port_id]  # idempotent per instance
    net = first[0].network_id
    second = await comp.allocate_ports("inst-1", project, [{"uuid": net, "fixed_ip": "10.0.0.77"}])
    assert len(second) == 2 and second[1].fixed_ips == ["10.0.0.77"]
    # a user's own port handed to an instance is unbound, not deleted, on deallocation
    own = (await nadmin.post(f"{N}/ports", {"port": {"network_id": net, "name": "mine"}}))["port"]
    bound = await comp.allocate_ports("inst-2", project, [{"port": own["id"]}])
    assert [p.port_id for p in bound] == [own["id"]]
    assert (await nadmin.get(f"{N}/ports/{own['id']}"))["port"]["device_id"] == "inst-2"
    data = await comp.network_data("inst-1")
    assert {n["ip_address"] for n in data["networks"]} == {"10.0.0.2", "10.0.0.77"}
    # plug: a tap in the root namespace moves onto the network's bridge
    dp = DataPlane(net_daemon.config.network.namespace)
    tap = first[0].tap_name
    import subprocess
    subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], check=True)
    try:
        await comp.plug(tap, first[0].port_id)
        ports = {p.name: p.bridge for p in await dp.list_ports()}
        assert ports[tap] == "msb" + net.replace("-", "")[:11]
        assert (await nadmin.get(f"{N}/ports/{first[0].port_id}"))["port"]["status"] == "ACTIVE"
        await comp.deallocate_ports("inst-1")
        await comp.deallocate_ports("inst-1")
        assert tap not in {p.name for p in await dp.list_ports()}
    finally:
        subprocess.run(["ip", "link", "del", tap], capture_output=True)
        await dp.close()
    assert (await nadmin.get(f"{N}/ports?device_id=inst-1"))["ports"] == []
    await comp.deallocate_ports("inst-2")
    kept = (await nadmin.get(f"{N}/ports/{own['id']}"))["port"]
    assert kept["device_id"] == "" and kept["device_owner"] == ""
