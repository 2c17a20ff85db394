"""Indexes the store keeps current: each answer equals a scan of the table, after any change."""
import random

from appliance.compute.usage import ProjectUsage
from appliance.state import FieldIndex, Put, Store
from appliance.state.store import Delete


async def _store(tmp_path) -> Store:
    s = Store(tmp_path)
    await s.open()
    return s


def _scan_usage(store: Store, project: str) -> dict[str, int]:
    mine = [d for d in store.all("instances") if d["project_id"] == project]
    return {"instances": len(mine), "cores": sum(d["flavor"]["vcpus"] for d in mine),
            "ram": sum(d["flavor"]["ram"] for d in mine)}


async def test_field_index_and_usage_equal_a_scan_through_puts_moves_and_deletes(tmp_path):
    store = await _store(tmp_path)
    await store.commit([Put("instances", "pre", {"id": "pre", "project_id": "p1",
                                                 "flavor": {"vcpus": 2, "ram": 64}})])
    by_project = FieldIndex(store, "instances", lambda d: d.get("project_id"))
    usage = ProjectUsage(store, "instances")
    assert by_project.ids("p1") == {"pre"}  # built from what the table already held
    assert usage.of("p1") == {"instances": 1, "cores": 2, "ram": 64}
    rng = random.Random(7)
    ids = [f"i{n}" for n in range(30)]
    for _ in range(300):
        id = rng.choice(ids)
        if rng.random() < 0.25:
            await store.commit([Delete("instances", id)])
        else:  # a new server, a resize, or a move to another project
            await store.commit([Put("instances", id, {
                "id": id, "project_id": rng.choice(["p1", "p2", "p3"]),
                "flavor": {"vcpus": rng.randint(1, 8), "ram": rng.choice([16, 512, 2048])}})])
        for project in ("p1", "p2", "p3", "nobody"):
            assert usage.of(project) == _scan_usage(store, project)
            assert by_project.ids(project) == {d["id"] for d in store.all("instances")
                                               if d["project_id"] == project}
    await store.close()


async def test_field_index_answers_a_copy_the_caller_may_change_the_table_under(tmp_path):
    store = await _store(tmp_path)
    index = FieldIndex(store, "actions", lambda d: d["instance_id"])
    await store.commit([Put("actions", f"a{n}", {"id": f"a{n}", "instance_id": "x"})
                        for n in range(5)])
    for id in index.ids("x"):  # deleting while iterating must not break the loop
        await store.commit([Delete("actions", id)])
    assert index.ids("x") == set() and index.docs("x") == []
    await store.close()


async def test_subnet_addresses_equal_a_scan_of_the_ports(tmp_path):
    from appliance.network.ipam import AddressIndex
    store = await _store(tmp_path)
    index = AddressIndex(store, "ports")
    rng = random.Random(3)
    ids = [f"p{n}" for n in range(20)]

    def scan(subnet, besides=None):
        return {f["ip_address"] for d in store.all("ports") if d["id"] != besides
                for f in d["fixed_ips"] if f["subnet_id"] == subnet}
    for _ in range(200):
        id = rng.choice(ids)
        if rng.random() < 0.3:
            await store.commit([Delete("ports", id)])
        else:  # addresses may repeat across ports (a shared one stays taken while any holds it)
            await store.commit([Put("ports", id, {"id": id, "fixed_ips": [
                {"subnet_id": rng.choice(["s1", "s2"]), "ip_address": f"10.0.0.{rng.randint(1, 8)}"}
                for _ in range(rng.randint(0, 2))]})])
        for subnet in ("s1", "s2"):
            assert index.taken(subnet) == scan(subnet)
            besides = rng.choice(ids)
            assert index.taken(subnet, besides_port=besides) == scan(subnet, besides)
    await store.close()


async def test_subnet_allocation_is_the_lowest_free_address_through_takes_releases_and_pools(
        tmp_path):
    """The index starts its walk at the last address it handed out; a released lower address,
    or a subnet laid out anew (pools, gateway), must still give the lowest free one."""
    from appliance.network.ipam import AddressIndex, allocate, used_addresses
    from appliance.network.records import Subnet
    store = await _store(tmp_path)
    index = AddressIndex(store, "ports")
    subnet = Subnet(id="s1", name="", network_id="n", project_id="p", cidr="10.0.0.0/27",
                    gateway_ip="10.0.0.1",
                    allocation_pools=[{"start": "10.0.0.2", "end": "10.0.0.30"}])
    rng = random.Random(5)
    held: dict[str, str] = {}  # port id → its address

    def scan_allocate(sn):
        return allocate(sn, used_addresses(sn, set(held.values())))
    for step in range(300):
        if step == 150:  # another layout: the gateway moves into what was the pool
            subnet.gateway_ip = "10.0.0.7"
            subnet.allocation_pools = [{"start": "10.0.0.1", "end": "10.0.0.6"},
                                       {"start": "10.0.0.8", "end": "10.0.0.30"}]
        if held and rng.random() < 0.45:
            id = rng.choice(sorted(held))
            del held[id]
            await store.commit([Delete("ports", id)])
            continue
        expected = scan_allocate(subnet)
        got = index.allocate(subnet)
        assert got == expected, step
        if got is not None:
            id = f"p{step}"
            held[id] = got
            await store.commit([Put("ports", id, {"id": id, "fixed_ips": [
                {"subnet_id": "s1", "ip_address": got}]})])
    await store.close()
