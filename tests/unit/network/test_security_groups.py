"""network/security_groups.py judged alone: groups and rules over a store in tmp_path, the
real quota ledger and a counted sync (tests/unit/network/rooms.py). No manager, no namespace."""
from __future__ import annotations

import asyncio

import pytest

from appliance.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from appliance.network.security_groups import SecurityGroups
from tests.unit.network.rooms import Room, room_over


@pytest.fixture
async def room(tmp_path):
    async with room_over(tmp_path) as room:
        yield room


def groups_of(room: Room) -> SecurityGroups:
    return SecurityGroups(room.tables, room.lock, room.quotas, room.sync)


def rules_of(room: Room, sg_id: str) -> set[tuple]:
    return {(r.direction, r.ethertype, r.protocol, r.port_range_min, r.port_range_max,
             r.remote_ip_prefix, r.remote_group_id)
            for r in room.tables.sg_rules.list(lambda r: r.security_group_id == sg_id)}


async def test_the_default_group_is_made_once_per_project_with_neutrons_rules(room):
    groups = groups_of(room)
    made = await asyncio.gather(*(groups.ensure_default_sg("p1") for _ in range(5)))
    assert len({sg.id for sg in made}) == 1
    (sg,) = room.tables.security_groups.list()
    assert (sg.name, sg.project_id) == ("default", "p1")
    assert rules_of(room, sg.id) == {
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
        ("ingress", "IPv4", None, None, None, None, sg.id),
        ("ingress", "IPv6", None, None, None, None, sg.id)}
    assert (await groups.ensure_default_sg("p2")).id != sg.id
    with pytest.raises(Conflict, match="Default security group already exists"):
        await groups.create_security_group("p1", name="default")
    with pytest.raises(BadRequest):
        await groups.ensure_default_sg("")
    assert len(room.tables.security_groups.list(lambda g: g.project_id == "p1")) == 1


async def test_a_new_group_brings_the_projects_default_and_only_egress_rules(room):
    groups = groups_of(room)
    web = await groups.create_security_group("p1", name="web", description="w")
    names = sorted(g.name for g in room.tables.security_groups.list())
    assert names == ["default", "web"]
    assert rules_of(room, web.id) == {("egress", "IPv4", None, None, None, None, None),
                                      ("egress", "IPv6", None, None, None, None, None)}
    default = next(g for g in room.tables.security_groups.list() if g.name == "default")
    with pytest.raises(Conflict, match="Updating default security group not allowed"):
        await groups.update_security_group(default, {"name": "other"})
    renamed = await groups.update_security_group(web, {"name": "www"})
    assert room.tables.security_groups.require(web.id).name == "www" == renamed.name


@pytest.mark.parametrize("body, error", [
    ({"direction": "sideways"}, "direction"),
    ({"direction": "ingress", "ethertype": "IPv5"}, "ethertype"),
    ({"direction": "ingress", "protocol": "bogus"}, "protocol bogus not supported"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 90,
      "port_range_max": 80}, "port_range_min must be <= port_range_max"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 0}, "1-65535"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": "x"}, "must be integers"),
    ({"direction": "ingress", "port_range_min": 22}, "Port ranges need a protocol"),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8",
      "remote_group_id": "g"}, "Only remote_ip_prefix or remote_group_id"),
    ({"direction": "ingress", "remote_ip_prefix": "not-a-net"}, "Invalid remote_ip_prefix"),
    ({"direction": "ingress", "remote_ip_prefix": "2001:db8::/32"}, "Conflicting value"),
])
async def test_a_bad_rule_is_refused_and_nothing_is_stored(room, body, error):
    groups = groups_of(room)
    sg = await groups.create_security_group("p1", name="web")
    before = rules_of(room, sg.id)
    with pytest.raises(BadRequest, match=error):
        await groups.create_security_group_rule("p1", {"security_group_id": sg.id, **body})
    assert rules_of(room, sg.id) == before


async def test_a_rule_is_normalised_stored_once_and_its_remote_group_must_exist(room):
    groups = groups_of(room)
    sg = await groups.create_security_group("p1", name="web")
    syncs = room.sync.count
    rule = await groups.create_security_group_rule("p1", {
        "security_group_id": sg.id, "direction": "ingress", "protocol": "TCP",
        "port_range_min": 22, "remote_ip_prefix": "10.1.2.3/16"})
    assert (rule.protocol, rule.port_range_min, rule.port_range_max, rule.remote_ip_prefix) == \
        ("tcp", 22, 22, "10.1.0.0/16")
    assert room.tables.sg_rules.require(rule.id).remote_ip_prefix == "10.1.0.0/16"
    assert room.sync.count == syncs + 1
    with pytest.raises(Conflict, match=f"Rule id is {rule.id}"):
        await groups.create_security_group_rule("p1", {
            "security_group_id": sg.id, "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.1.0.0/16"})
    # 0.0.0.0/0 is the same rule as no prefix: the stored egress rule already says it
    with pytest.raises(Conflict):
        await groups.create_security_group_rule("p1", {
            "security_group_id": sg.id, "direction": "egress",
            "remote_ip_prefix": "0.0.0.0/0"})
    with pytest.raises(NotFound):
        await groups.create_security_group_rule("p1", {
            "security_group_id": sg.id, "direction": "ingress", "remote_group_id": "nope"})
    with pytest.raises(NotFound):
        await groups.create_security_group_rule("p1", {
            "security_group_id": "nope", "direction": "ingress"})
    await groups.delete_security_group_rule(rule.id)
    assert room.tables.sg_rules.get(rule.id) is None


async def test_a_group_in_use_or_the_default_is_kept_and_a_deleted_group_takes_its_rules(room):
    groups = groups_of(room)
    web = await groups.create_security_group("p1", name="web")
    db = await groups.create_security_group("p1", name="db")
    pointing = await groups.create_security_group_rule("p1", {
        "security_group_id": db.id, "direction": "ingress", "remote_group_id": web.id})
    default = await groups.ensure_default_sg("p1")
    with pytest.raises(Conflict, match="Removing default security group not allowed"):
        await groups.delete_security_group(default.id)
    net, _ = await room.network("p1", "10.1.0.0/24")
    port = await room.ports.create_port("p1", net.id, security_groups=[web.id])
    with pytest.raises(Conflict, match="in use"):
        await groups.delete_security_group(web.id)
    async with room.lock:
        await room.ports.delete_port_locked(port.id)
    await groups.delete_security_group(web.id)
    assert room.tables.security_groups.get(web.id) is None
    assert rules_of(room, web.id) == set()
    assert room.tables.sg_rules.get(pointing.id) is None  # a rule naming it as remote goes too
    await groups.delete_security_group(default.id, is_admin=True)


async def test_the_group_and_rule_quotas_hold(room):
    groups = groups_of(room)
    await groups.ensure_default_sg("p1")
    room.limits["security_group"] = 2  # the default is one of the two
    await groups.create_security_group("p1", name="a")
    with pytest.raises(QuotaExceeded):
        await groups.create_security_group("p1", name="b")
    assert sorted(g.name for g in room.tables.security_groups.list()) == ["a", "default"]
