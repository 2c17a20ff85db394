"""network/compute_binding.py judged alone: the network manager built from a real store with no
data plane (dataplane=False: no namespace, bridges or DHCP servers), asked what compute asks."""
from __future__ import annotations

import pytest

from appliance.errors import Conflict, NotFound
from appliance.events import EventBus
from appliance.network.manager import NetworkManager
from appliance.quota import Quotas
from appliance.state import Store
from tests.daemon import write_config


@pytest.fixture
async def network(tmp_path):
    _, config = write_config(tmp_path, components=["network"])
    store = Store(config.state_dir)
    await store.open()
    manager = NetworkManager(store, config.network, Quotas(), EventBus(store), dataplane=False)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()
        await store.close()


async def _net(manager: NetworkManager, project: str, cidr: str, **kw):
    net = await manager.create_network(project, name=f"net-{project}", **kw)
    await manager.create_subnet(project, net.id, cidr=cidr, name="sn")
    return net


async def test_ports_for_an_instance_are_allocated_once_and_released(network):
    net = await _net(network, "p1", "10.1.0.0/24")
    binding = network.binding
    first = await binding.allocate_ports("i1", "p1", [{"uuid": net.id}])
    again = await binding.allocate_ports("i1", "p1", [{"uuid": net.id}])
    assert [p.port_id for p in again] == [p.port_id for p in first]  # idempotent per instance
    (port,) = first
    assert port.network_id == net.id and port.fixed_ips[0].startswith("10.1.0.")
    data = await binding.network_data("i1")
    assert [n["ip_address"] for n in data["networks"]] == port.fixed_ips
    await binding.deallocate_ports("i1")
    assert network.ports.list(lambda p: p.device_id == "i1") == []


async def test_another_projects_network_and_a_bound_port_are_refused_before_a_build(network):
    theirs = await _net(network, "p2", "10.2.0.0/24")
    ours = await _net(network, "p1", "10.1.0.0/24")
    binding = network.binding
    with pytest.raises(NotFound):
        binding.check_requested_networks("p1", [{"uuid": theirs.id}])
    with pytest.raises(NotFound):
        await binding.allocate_ports("i1", "p1", [{"uuid": theirs.id}])
    (port,) = await binding.allocate_ports("i1", "p1", [{"uuid": ours.id}])
    with pytest.raises(Conflict):  # still bound to i1
        binding.check_requested_networks("p1", [{"port": port.port_id}])
    assert network.ports.list(lambda p: p.device_id == "i2") == []


async def test_a_port_the_user_made_is_unbound_not_deleted(network):
    net = await _net(network, "p1", "10.1.0.0/24")
    made = await network.create_port("p1", net.id)
    (bound,) = await network.binding.allocate_ports("i1", "p1", [{"port": made.id}])
    assert bound.port_id == made.id
    await network.binding.deallocate_port(made.id)
    kept = network.ports.require(made.id)
    assert kept.device_id == "" and kept.status == "DOWN"
