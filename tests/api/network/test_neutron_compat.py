"""Neutron behaviour that upstream clients and conformance tests rely on: `fields`, bulk
create, the tag sub-resource, subnet visibility, one router's subnets never overlapping."""
from __future__ import annotations

import pytest

from appliance.errors import BadRequest, Forbidden, NotFound
from tests.api.network.conftest import needs_root
from tests.api.network.test_network_api import _member

pytestmark = needs_root
N = "/network/v2.0"


async def test_fields_pick_the_attributes_of_lists_and_shows(nadmin):
    nets = (await nadmin.get(f"{N}/networks?fields=id&fields=name"))["networks"]
    assert nets and all(set(n) == {"id", "name"} for n in nets)
    one = (await nadmin.get(f"{N}/networks/{nets[0]['id']}?fields=id,mtu"))["network"]
    assert one == {"id": nets[0]["id"], "mtu": 1500}
    full = (await nadmin.get(f"{N}/networks/{nets[0]['id']}"))["network"]
    assert "subnets" in full and "admin_state_up" in full


async def test_bulk_create_is_all_or_nothing(nadmin):
    made = (await nadmin.post(f"{N}/networks", {"networks": [
        {"name": "bulk-a"}, {"name": "bulk-b"}]}))["networks"]
    assert [n["name"] for n in made] == ["bulk-a", "bulk-b"]
    subnets = (await nadmin.post(f"{N}/subnets", {"subnets": [
        {"network_id": made[0]["id"], "cidr": "10.41.0.0/24", "ip_version": 4},
        {"network_id": made[1]["id"], "cidr": "10.42.0.0/24", "ip_version": 4}]}))["subnets"]
    assert {s["cidr"] for s in subnets} == {"10.41.0.0/24", "10.42.0.0/24"}
    before = {n["id"] for n in (await nadmin.get(f"{N}/networks"))["networks"]}
    # the second item is bad: the first is undone, nothing stays
    with pytest.raises(NotFound):
        await nadmin.post(f"{N}/ports", {"ports": [
            {"network_id": made[0]["id"], "name": "ok"},
            {"network_id": "no-such-network"}]})
    assert (await nadmin.get(f"{N}/ports?name=ok"))["ports"] == []
    with pytest.raises(BadRequest):
        await nadmin.post(f"{N}/networks", {"networks": [{"name": "x"}] * 501})
    with pytest.raises(BadRequest):
        await nadmin.post(f"{N}/networks", {"networks": "not a list"})
    assert {n["id"] for n in (await nadmin.get(f"{N}/networks"))["networks"]} == before


async def test_tags_sub_resource(net_daemon, nadmin):
    net = (await nadmin.post(f"{N}/networks", {"network": {"name": "tagged"}}))["network"]
    base = f"{N}/networks/{net['id']}/tags"
    assert (await nadmin.put(base, {"tags": ["red", "blue", "red"]}))["tags"] == ["red", "blue"]
    await nadmin.put(base + "/green")
    assert sorted((await nadmin.get(base))["tags"]) == ["blue", "green", "red"]
    await nadmin.get(base + "/green")  # 204: present
    await nadmin.delete(base + "/green")
    with pytest.raises(NotFound):
        await nadmin.get(base + "/green")
    with pytest.raises(NotFound):
        await nadmin.delete(base + "/green")
    assert (await nadmin.get(f"{N}/networks?tags=red"))["networks"][0]["id"] == net["id"]
    with pytest.raises(BadRequest):
        await nadmin.put(base, {"tags": ["x" * 256]})
    with pytest.raises(BadRequest):
        await nadmin.put(base, {"tags": [f"t{i}" for i in range(51)]})
    await nadmin.delete(base)
    assert (await nadmin.get(base))["tags"] == []
    member = await _member(net_daemon, nadmin, "tess", "proj-tags")
    try:  # another project's network: not found, and not taggable
        with pytest.raises(NotFound):
            await member.put(base + "/mine")
        port = (await member.post(f"{N}/ports", {"port": {"network_id": (await member.post(
            f"{N}/networks", {"network": {"name": "m"}}))["network"]["id"]}}))["port"]
        await member.put(f"{N}/ports/{port['id']}/tags/owned")
        assert (await member.get(f"{N}/ports/{port['id']}"))["port"]["tags"] == ["owned"]
    finally:
        await member.close()


async def test_external_subnets_are_hidden_from_members(net_daemon, nadmin):
    ext = (await nadmin.post(f"{N}/networks", {"network": {
        "name": "public", "router:external": True}}))["network"]
    sn = (await nadmin.post(f"{N}/subnets", {"subnet": {
        "network_id": ext["id"], "cidr": "172.30.0.0/24", "ip_version": 4}}))["subnet"]
    member = await _member(net_daemon, nadmin, "vic", "proj-vis")
    try:
        assert ext["id"] in {n["id"] for n in (await member.get(f"{N}/networks"))["networks"]}
        assert sn["id"] not in {s["id"] for s in (await member.get(f"{N}/subnets"))["subnets"]}
        with pytest.raises(NotFound):
            await member.get(f"{N}/subnets/{sn['id']}")
        with pytest.raises(Forbidden):  # members may not tag what they may not update
            await member.put(f"{N}/networks/{ext['id']}/tags/x")
    finally:
        await member.close()


async def test_one_router_never_joins_overlapping_subnets(nadmin):
    a = (await nadmin.post(f"{N}/networks", {"network": {"name": "ov-a"}}))["network"]
    b = (await nadmin.post(f"{N}/networks", {"network": {"name": "ov-b"}}))["network"]
    sa = (await nadmin.post(f"{N}/subnets", {"subnet": {
        "network_id": a["id"], "cidr": "10.77.0.0/24", "ip_version": 4}}))["subnet"]
    sb = (await nadmin.post(f"{N}/subnets", {"subnet": {
        "network_id": b["id"], "cidr": "10.77.0.128/25", "ip_version": 4}}))["subnet"]
    router = (await nadmin.post(f"{N}/routers", {"router": {"name": "ov"}}))["router"]
    await nadmin.put(f"{N}/routers/{router['id']}/add_router_interface", {"subnet_id": sa["id"]})
    with pytest.raises(BadRequest, match="overlaps"):
        await nadmin.put(f"{N}/routers/{router['id']}/add_router_interface",
                         {"subnet_id": sb["id"]})
    port = (await nadmin.post(f"{N}/ports", {"port": {
        "network_id": b["id"], "fixed_ips": [{"subnet_id": sb["id"]}]}}))["port"]
    with pytest.raises(BadRequest, match="overlaps"):
        await nadmin.put(f"{N}/routers/{router['id']}/add_router_interface",
                         {"port_id": port["id"]})
    # a second router may join the other subnet: overlap is fine where no router joins both
    other = (await nadmin.post(f"{N}/routers", {"router": {"name": "ov2"}}))["router"]
    await nadmin.put(f"{N}/routers/{other['id']}/add_router_interface", {"subnet_id": sb["id"]})


async def test_only_served_extensions_are_advertised(nadmin):
    exts = {e["alias"] for e in (await nadmin.get(f"{N}/extensions"))["extensions"]}
    assert not exts & {"agent", "dhcp_agent_scheduler", "multi-provider"}
    assert "standard-attr-tag" in exts


async def test_quota_set_with_check_limit(nadmin):
    pid = nadmin.session.project_id
    used = (await nadmin.get(f"{N}/quotas/{pid}/details"))["quota"]["network"]["used"]
    assert used >= 1  # the bootstrap private network
    q = (await nadmin.put(f"{N}/quotas/{pid}", {"quota": {
        "network": used + 5, "port": 40, "check_limit": True, "force": False}}))["quota"]
    assert q["network"] == used + 5 and q["port"] == 40
    with pytest.raises(BadRequest, match="already used"):
        await nadmin.put(f"{N}/quotas/{pid}", {"quota": {"network": 0, "check_limit": True}})
    with pytest.raises(BadRequest, match="check_limit"):
        await nadmin.put(f"{N}/quotas/{pid}", {"quota": {"network": 3, "check_limit": "yes"}})
