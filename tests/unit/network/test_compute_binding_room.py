"""network/compute_binding.py judged alone: binding and unbinding an instance's ports over a
store in tmp_path, with fakes of the ports and of the data plane's taps
(tests/unit/network/rooms.py). No manager, no namespace."""
from __future__ import annotations

import pytest

from appliance.errors import BadRequest, NotFound
from appliance.events import EventBus
from appliance.network.compute_binding import ComputeBinding
from appliance.network.security_groups import SecurityGroups
from tests.unit.network.rooms import FakeTaps, Room, room_over


@pytest.fixture
async def room(tmp_path):
    async with room_over(tmp_path) as room:
        yield room


def binding_of(room: Room, taps: FakeTaps | None) -> ComputeBinding:
    return ComputeBinding(room.tables, room.lock, room.ports, taps,
                          EventBus(room.tables.store), room.sync)


async def test_an_instance_is_bound_to_its_ports_and_their_taps_are_plugged(room):
    taps = FakeTaps()
    binding = binding_of(room, taps)
    net, _ = await room.network("p1", "10.1.0.0/24")
    syncs = room.sync.count
    (bound,) = await binding.allocate_ports("i1", "p1", [{"uuid": net.id}])
    port = room.tables.ports.require(bound.port_id)
    assert (port.device_id, port.device_owner, port.auto_delete) == ("i1", "compute:nova", True)
    assert (bound.network_id, bound.mac, bound.tap_name, bound.fixed_ips) == \
        (net.id, port.mac_address, port.tap_name, ["10.1.0.2"])
    assert room.sync.count == syncs + 1
    assert [b.port_id for b in await binding.allocate_ports("i1", "p1", [{"uuid": net.id}])] \
        == [bound.port_id]  # the same request again makes no second port
    assert len(room.tables.ports.list()) == 1

    taps.existing.add(bound.tap_name)
    await binding.plug(bound.tap_name, bound.port_id)
    assert taps.attached == {bound.tap_name: net.bridge}
    assert room.tables.ports.require(bound.port_id).status == "ACTIVE"


async def test_a_tap_that_is_not_there_leaves_the_port_down_and_says_so(room):
    binding = binding_of(room, FakeTaps())
    net, _ = await room.network("p1", "10.1.0.0/24")
    (bound,) = await binding.allocate_ports("i1", "p1", [{"uuid": net.id}])
    await binding.plug(bound.tap_name, bound.port_id)
    assert room.tables.ports.require(bound.port_id).status == "DOWN"
    (event,) = [e for e in binding.events.repo.list() if e.kind == "port.plug_failed"]
    assert (event.resource_id, event.project_id) == (bound.port_id, "p1")


async def test_unbinding_deletes_the_ports_made_for_the_instance_and_keeps_the_users(room):
    taps = FakeTaps()
    binding = binding_of(room, taps)
    net, _ = await room.network("p1", "10.1.0.0/24")
    mine = await room.ports.create_port("p1", net.id)
    bound = await binding.allocate_ports("i1", "p1", [{"uuid": net.id}, {"port": mine.id}])
    assert sorted(b.port_id for b in bound) == sorted(
        [mine.id, next(p.id for p in room.tables.ports.list() if p.id != mine.id)])
    kept = room.tables.ports.require(mine.id)
    assert (kept.device_id, kept.device_owner) == ("i1", "compute:nova")
    await binding.deallocate_ports("i1")
    assert [p.id for p in room.tables.ports.list()] == [mine.id]
    kept = room.tables.ports.require(mine.id)
    assert (kept.device_id, kept.device_owner, kept.binding_host_id, kept.status) == \
        ("", "", "", "DOWN")
    assert sorted(taps.deleted) == sorted(b.tap_name for b in bound)
    assert room.ports.unlocked_calls == []


async def test_foreign_networks_and_ports_are_refused_and_nothing_is_bound(room):
    binding = binding_of(room, None)  # no data plane: records only
    theirs, _ = await room.network("p2", "10.2.0.0/24")
    ours, _ = await room.network("p1", "10.1.0.0/24")
    their_port = await room.ports.create_port("p2", theirs.id)
    with pytest.raises(NotFound):
        binding.check_requested_networks("p1", [{"uuid": theirs.id}])
    with pytest.raises(NotFound):
        await binding.allocate_ports("i1", "p1", [{"uuid": theirs.id}])
    with pytest.raises(NotFound):
        await binding.allocate_ports("i1", "p1", [{"port": their_port.id}])
    with pytest.raises(BadRequest):
        await binding.allocate_ports("i1", "p1", [{"fixed_ip": "10.1.0.9"}])
    assert room.tables.ports.list(lambda p: p.device_id == "i1") == []
    (bound,) = await binding.allocate_ports("i1", "p1", [])  # the project's one network
    assert bound.network_id == ours.id
    await binding.deallocate_port(bound.port_id)
    assert room.tables.ports.get(bound.port_id) is None


async def test_a_group_goes_on_and_off_every_port_of_the_instance(room):
    binding = binding_of(room, None)
    groups = SecurityGroups(room.tables, room.lock, room.quotas, room.sync)
    web = await groups.create_security_group("p1", name="web")
    await groups.create_security_group_rule("p1", {
        "security_group_id": web.id, "direction": "ingress", "protocol": "tcp",
        "port_range_min": 80, "remote_ip_prefix": "0.0.0.0/0"})
    a, _ = await room.network("p1", "10.1.0.0/24")
    b, _ = await room.network("p1", "10.2.0.0/24")
    await binding.allocate_ports("i1", "p1", [{"uuid": a.id}, {"uuid": b.id}])
    assert await binding.change_instance_security_group("i1", "p1", add="web") == ["web"]
    assert all(p.security_groups == [web.id] for p in room.tables.ports.list())
    (seen,) = binding.instance_security_groups("i1")
    assert seen.name == "web"
    assert [(r.protocol, r.from_port, r.to_port, r.cidr) for r in seen.rules] == \
        [("tcp", 80, 80, "0.0.0.0/0")]
    with pytest.raises(BadRequest, match="already associated"):
        await binding.change_instance_security_group("i1", "p1", add="web")
    assert await binding.change_instance_security_group("i1", "p1", remove=web.id) == []
    assert all(p.security_groups == [] for p in room.tables.ports.list())
    with pytest.raises(NotFound):
        await binding.change_instance_security_group("i1", "p1", add="nope")
