"""The network manager's own rooms — networks, subnets and ports — judged over a store in
tmp_path: it is built from the store, network's config, a quota ledger and an event bus (no
daemon context) and without a data plane (no namespace, bridges or DHCP servers)."""
from __future__ import annotations

import asyncio

import pytest

from appliance.config import NetworkConfig
from appliance.errors import BadRequest, Conflict, QuotaExceeded
from appliance.events import EventBus
from appliance.network.manager import NetworkManager
from appliance.network.records import PortOwner
from appliance.quota import Quotas
from appliance.state import Store


@pytest.fixture
async def network(tmp_path):
    store = Store(tmp_path / "state")
    await store.open()
    manager = NetworkManager(store, NetworkConfig(namespace="unused"), Quotas(), EventBus(store),
                             dataplane=False)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()
        await store.close()


async def _net(manager: NetworkManager, cidr: str, project: str = "p1"):
    net = await manager.create_network(project, name="n")
    sn = await manager.create_subnet(project, net.id, cidr=cidr, name="sn")
    return net, sn


async def test_concurrent_ports_never_share_an_address_and_a_full_subnet_stores_nothing(network):
    net, sn = await _net(network, "10.1.0.0/29")  # .1 gateway, .2-.6 for ports
    ports = await asyncio.gather(*(network.create_port("p1", net.id) for _ in range(5)))
    assert sorted(p.fixed_ips[0]["ip_address"] for p in ports) == \
        [f"10.1.0.{i}" for i in range(2, 7)]
    assert len({p.mac_address for p in ports}) == 5
    with pytest.raises(Conflict, match="No more IP addresses"):
        await network.create_port("p1", net.id)
    assert network.ports.count() == 5
    await network.delete_port(ports[0].id)
    again = await network.create_port("p1", net.id)
    assert again.fixed_ips[0]["ip_address"] == ports[0].fixed_ips[0]["ip_address"]


async def test_an_address_or_mac_in_use_is_refused(network):
    net, sn = await _net(network, "10.1.0.0/24")
    first = await network.create_port("p1", net.id, fixed_ips=[{"ip_address": "10.1.0.50"}])
    with pytest.raises(Conflict, match="already allocated"):
        await network.create_port("p1", net.id, fixed_ips=[{"ip_address": "10.1.0.50"}])
    with pytest.raises(Conflict, match="is in use"):
        await network.create_port("p1", net.id, mac_address=first.mac_address.upper())
    with pytest.raises(BadRequest, match="not in any subnet"):
        await network.create_port("p1", net.id, fixed_ips=[{"ip_address": "10.2.0.5"}])
    assert [p.id for p in network.ports.list()] == [first.id]


async def test_a_port_gets_its_projects_default_group_and_security_off_refuses_groups(network):
    net, _ = await _net(network, "10.1.0.0/24")
    port = await network.create_port("p1", net.id)
    (default,) = network.security_groups.list(lambda g: g.project_id == "p1")
    assert default.name == "default" and port.security_groups == [default.id]
    with pytest.raises(Conflict, match="Port has security group associated"):
        await network.create_port("p1", net.id, port_security_enabled=False,
                                  security_groups=[default.id])
    bare = await network.create_port("p1", net.id, port_security_enabled=False)
    assert bare.security_groups == []
    with pytest.raises(Conflict):
        await network.update_port(port, {"port_security_enabled": False})
    assert network.ports.require(port.id).port_security_enabled


async def test_a_network_or_subnet_in_use_and_a_router_port_are_kept(network):
    net, sn = await _net(network, "10.1.0.0/24")
    port = await network.create_port("p1", net.id)
    with pytest.raises(Conflict, match="still in use"):
        await network.delete_network(net.id)
    with pytest.raises(Conflict, match="IP allocation from this subnet"):
        await network.delete_subnet(sn.id)
    router = await network.routing.create_router("p1")
    iface, _ = await network.routing.add_router_interface(router, subnet_id=sn.id,
                                                          project_id="p1")
    assert iface.device_owner == PortOwner.ROUTER_INTERFACE
    with pytest.raises(Conflict, match="cannot be deleted directly"):
        await network.delete_port(iface.id)
    await network.routing.remove_router_interface(router, port_id=iface.id)
    await network.delete_port(port.id)
    await network.delete_network(net.id)
    assert network.networks.list() == [] and network.subnets.list() == []


async def test_the_port_quota_is_the_projects_and_registered_with_the_ledger(network):
    net, _ = await _net(network, "10.1.0.0/24")
    await network.set_quota("p1", {"port": 1})
    await network.create_port("p1", net.id)
    with pytest.raises(QuotaExceeded):
        await network.create_port("p1", net.id)
    assert network.usage("p1")["port"] == 1
    with pytest.raises(BadRequest, match="Unrecognized quota attribute"):
        await network.set_quota("p1", {"ports": 3})
