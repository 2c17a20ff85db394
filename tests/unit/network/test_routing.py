"""network/routing.py judged alone: routers and floating IPs built from the repositories over a
store in tmp_path, the real quota ledger, and a fake of the ports (tests/unit/network/rooms.py).
No manager, no namespace."""
from __future__ import annotations

import ipaddress

import pytest

from appliance.errors import BadRequest, Conflict, Forbidden, NotFound, QuotaExceeded
from appliance.network.records import PortOwner
from appliance.network.routing import Routing
from tests.unit.network.rooms import Room, room_over

EXTERNAL = "198.51.100.0/24"


@pytest.fixture
async def room(tmp_path):
    async with room_over(tmp_path) as room:
        yield room


def routing_of(room: Room) -> Routing:
    return Routing(room.tables, room.lock, room.ports, room.quotas, room.sync,
                   external_cidr=EXTERNAL)


async def test_a_subnet_interface_takes_the_gateway_address_once_per_subnet(room):
    routing = routing_of(room)
    _, sn = await room.network("p1", "10.1.0.0/24")
    router = await routing.create_router("p1", name="r1")
    syncs = room.sync.count
    port, attached = await routing.add_router_interface(router, subnet_id=sn.id, project_id="p1")
    assert attached.id == sn.id
    assert port.ips() == ["10.1.0.1"]  # the subnet's gateway
    assert (port.device_id, port.device_owner) == (router.id, PortOwner.ROUTER_INTERFACE)
    assert [p.id for p in routing.router_interfaces(router.id)] == [port.id]
    assert room.sync.count == syncs + 1  # the data plane is asked to follow
    with pytest.raises(BadRequest, match="already has a port on subnet"):
        await routing.add_router_interface(router, subnet_id=sn.id, project_id="p1")
    other = await routing.create_router("p1", name="r2")
    with pytest.raises(BadRequest, match=f"already attached to router {router.id}"):
        await routing.add_router_interface(other, subnet_id=sn.id, project_id="p1")
    assert len(room.tables.ports.list()) == 1
    assert room.ports.unlocked_calls == []  # ports were made under the one lock


async def test_a_router_refuses_a_subnet_overlapping_one_it_already_joins(room):
    routing = routing_of(room)
    _, first = await room.network("p1", "10.1.0.0/24")
    _, inside = await room.network("p1", "10.1.0.0/25")
    _, apart = await room.network("p1", "10.2.0.0/24")
    router = await routing.create_router("p1")
    await routing.add_router_interface(router, subnet_id=first.id, project_id="p1")
    with pytest.raises(BadRequest, match="overlaps with cidr 10.1.0.0/24"):
        await routing.add_router_interface(router, subnet_id=inside.id, project_id="p1")
    assert [p.ips() for p in routing.router_interfaces(router.id)] == [["10.1.0.1"]]
    await routing.add_router_interface(router, subnet_id=apart.id, project_id="p1")
    assert sorted(p.ips()[0] for p in routing.router_interfaces(router.id)) == \
        ["10.1.0.1", "10.2.0.1"]
    # another router may join the overlapping subnet: overlap is refused per router
    second = await routing.create_router("p1")
    await routing.add_router_interface(second, subnet_id=inside.id, project_id="p1")


async def test_another_projects_subnet_and_a_subnet_without_gateway_are_refused(room):
    routing = routing_of(room)
    _, theirs = await room.network("p2", "10.9.0.0/24")
    _, bare = await room.network("p1", "10.3.0.0/24", gateway=False)
    router = await routing.create_router("p1")
    with pytest.raises(NotFound):
        await routing.add_router_interface(router, subnet_id=theirs.id, project_id="p1")
    with pytest.raises(BadRequest, match="does not have a gateway IP"):
        await routing.add_router_interface(router, subnet_id=bare.id, project_id="p1")
    with pytest.raises(BadRequest, match="Either subnet_id or port_id"):
        await routing.add_router_interface(router, project_id="p1")
    assert room.tables.ports.list() == []


async def _routed_port(room: Room, routing: Routing):
    """An external network, a router with its gateway there and an interface on 10.1.0.0/24,
    and a port on that subnet."""
    ext, _ = await room.network("admin", external=True)
    net, sn = await room.network("p1", "10.1.0.0/24")
    router = await routing.create_router("p1", external_gateway_info={"network_id": ext.id})
    await routing.add_router_interface(router, subnet_id=sn.id, project_id="p1")
    port = await room.ports.create_port("p1", net.id)
    return ext, router, port


async def test_a_floating_ip_follows_its_port_on_and_off(room):
    routing = routing_of(room)
    ext, router, port = await _routed_port(room, routing)
    gateway = room.tables.ports.require(router.gateway_port_id)
    assert gateway.device_owner == PortOwner.ROUTER_GATEWAY
    assert ipaddress.IPv4Address(gateway.ips()[0]) in ipaddress.IPv4Network(EXTERNAL)
    fip = await routing.create_floatingip("p1", ext.id, port_id=port.id)
    assert ipaddress.IPv4Address(fip.floating_ip_address) in ipaddress.IPv4Network(EXTERNAL)
    assert fip.floating_ip_address != gateway.ips()[0]
    stored = room.tables.floatingips.require(fip.id)
    assert (stored.port_id, stored.fixed_ip_address, stored.router_id, stored.status) == \
        (port.id, port.ips()[0], router.id, "ACTIVE")
    assert room.tables.ports.require(fip.floating_port_id).device_owner == PortOwner.FLOATINGIP

    off = await routing.update_floatingip(fip, {"port_id": None}, project_id="p1")
    assert (off.port_id, off.fixed_ip_address, off.router_id, off.status) == \
        (None, None, None, "DOWN")
    assert room.tables.floatingips.require(fip.id).status == "DOWN"
    on = await routing.update_floatingip(fip, {"port_id": port.id}, project_id="p1")
    assert on.status == "ACTIVE" and on.revision_number == 2

    await routing.delete_floatingip(fip.id)
    assert room.tables.floatingips.get(fip.id) is None
    assert room.tables.ports.get(fip.floating_port_id) is None  # its address is free again


async def test_a_floating_ip_needs_a_router_between_its_port_and_the_external_network(room):
    routing = routing_of(room)
    ext, router, _ = await _routed_port(room, routing)
    lonely, _ = await room.network("p1", "10.5.0.0/24")
    port = await room.ports.create_port("p1", lonely.id)
    with pytest.raises(NotFound, match="is not reachable from subnet"):
        await routing.create_floatingip("p1", ext.id, port_id=port.id)
    with pytest.raises(Forbidden):
        await routing.create_floatingip("p1", ext.id, floating_ip_address="198.51.100.50")
    internal, _ = await room.network("p1", "10.6.0.0/24")
    with pytest.raises(BadRequest, match="not a valid external network"):
        await routing.create_floatingip("p1", internal.id)
    assert room.tables.floatingips.list() == []


async def test_an_interface_or_router_a_floating_ip_uses_is_kept(room):
    routing = routing_of(room)
    ext, router, port = await _routed_port(room, routing)
    fip = await routing.create_floatingip("p1", ext.id, port_id=port.id)
    sn_id = port.fixed_ips[0]["subnet_id"]
    with pytest.raises(Conflict, match="required by one or more floating IPs"):
        await routing.remove_router_interface(router, subnet_id=sn_id)
    with pytest.raises(Conflict):
        await routing.delete_router(router.id)
    with pytest.raises(Conflict, match="required by floating IPs"):
        await routing.update_router(router, {"external_gateway_info": None})
    await routing.update_floatingip(fip, {"port_id": None}, project_id="p1")
    removed, sn = await routing.remove_router_interface(router, subnet_id=sn_id)
    assert sn.id == sn_id and room.tables.ports.get(removed.id) is None
    await routing.delete_floatingip(fip.id)
    await routing.delete_router(router.id)
    assert room.tables.routers.list() == []
    assert room.tables.ports.get(router.gateway_port_id) is None
    assert room.ports.unlocked_calls == []


async def test_the_router_quota_is_held_before_a_router_is_stored(room):
    routing = routing_of(room)
    room.limits["router"] = 1
    await routing.create_router("p1")
    with pytest.raises(QuotaExceeded):
        await routing.create_router("p1")
    assert len(room.tables.routers.list()) == 1
    await routing.create_router("p2")  # a quota is per project
