"""Claims are atomic: 20 concurrent creates of a flavor that fits 10 → exactly 10 ACTIVE,
10 ERROR with a NoValidHost fault naming the filter; deleting everything leaves no claim.
Dedicated CPUs are pinned without double-booking; hw:numa_nodes spreads over host cells."""
import asyncio

from tests.api.compute.conftest import make_daemon, manager_of, wait_status
from tests.compute_support import TEST_IMAGE_ID
from tests.daemon import wait_for

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}


async def test_twenty_concurrent_creates_fit_exactly_ten(tmp_path):
    # test:///default reports 3072 MiB: reserve 512 → 2560 MiB = 10 × 256 MiB
    async with await make_daemon(tmp_path, {"reserved_host_memory_mb": 512}) as daemon:
        nova = await daemon.admin_client()
        try:
            pid = nova.session.project_id
            await nova.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"instances": 50,
                                                                      "cores": 100}})
            f = (await nova.post(f"{C}/flavors", {"flavor": {
                "name": "quarter", "ram": 256, "vcpus": 1, "disk": 1, "id": None}}))["flavor"]

            async def create(i):
                body = {"server": {"name": f"c{i}", "imageRef": TEST_IMAGE_ID,
                                   "flavorRef": f["id"]}}
                return (await nova.post(f"{C}/servers", body))["server"]["id"]

            ids = await asyncio.gather(*(create(i) for i in range(20)))
            final = [await wait_status(nova, i, "ACTIVE", "ERROR") for i in ids]
            active = [s for s in final if s["status"] == "ACTIVE"]
            errors = [s for s in final if s["status"] == "ERROR"]
            assert len(active) == 10 and len(errors) == 10
            for s in errors:
                assert s["fault"]["message"].startswith("No valid host was found. RamFilter: "
                                                        "256 MiB asked, 0 free"), s["fault"]
                assert s["fault"]["code"] == 500
            manager = manager_of(daemon)
            host = manager.scheduler.host_state()
            assert host.used_ram_mb == 2560 and host.free_ram_mb == 0
            stats = (await nova.get(f"{C}/os-hypervisors/statistics"))["hypervisor_statistics"]
            assert stats["memory_mb_used"] == 2560 + 512
            for i in ids:
                await nova.delete(f"{C}/servers/{i}")
            await wait_for(lambda: not manager.instances.list(), timeout=30)
            assert manager.scheduler.claim_count() == 0
            assert manager.scheduler.host_state().used_ram_mb == 0
        finally:
            await nova.close()


async def test_dedicated_cpus_pinned_never_double_booked(tmp_path):
    async with await make_daemon(tmp_path, {"reserved_host_cpus": 2,
                                            "reserved_host_memory_mb": 0}) as daemon:
        nova = await daemon.admin_client()
        try:
            f = (await nova.post(f"{C}/flavors", {"flavor": {
                "name": "pinned", "ram": 128, "vcpus": 4, "disk": 1, "id": None}}))["flavor"]
            await nova.post(f"{C}/flavors/{f['id']}/os-extra_specs",
                            {"extra_specs": {"hw:cpu_policy": "dedicated"}})
            ids = []
            for i in range(4):  # 16 pCPUs - 2 reserved = 14 → three 4-vCPU guests fit
                body = {"server": {"name": f"p{i}", "imageRef": TEST_IMAGE_ID,
                                   "flavorRef": f["id"]}}
                ids.append((await nova.post(f"{C}/servers", body))["server"]["id"])
            final = [await wait_status(nova, i, "ACTIVE", "ERROR") for i in ids]
            manager = manager_of(daemon)
            pinned = [manager.instances.require(s["id"]).pinned_cpus for s in final
                      if s["status"] == "ACTIVE"]
            assert len(pinned) == 3
            every = [c for p in pinned for c in p]
            assert len(every) == len(set(every)) == 12
            assert not {0, 1} & set(every)  # reserved for the host
            cells = {0: set(range(8)), 1: set(range(8, 16))}
            for p in pinned:  # each guest inside one host NUMA cell
                assert any(set(p) <= c for c in cells.values())
            err = [s for s in final if s["status"] == "ERROR"][0]
            assert "NUMATopologyFilter" in err["fault"]["message"]
            xml = await manager.driver.domain_xml(final[0]["id"])
            assert "<vcpupin" in xml
        finally:
            await nova.close()


async def test_numa_nodes_spread_over_host_cells(tmp_path):
    async with await make_daemon(tmp_path, {"reserved_host_memory_mb": 0}) as daemon:
        nova = await daemon.admin_client()
        try:
            f = (await nova.post(f"{C}/flavors", {"flavor": {
                "name": "numa2", "ram": 512, "vcpus": 2, "disk": 1, "id": None}}))["flavor"]
            await nova.post(f"{C}/flavors/{f['id']}/os-extra_specs",
                            {"extra_specs": {"hw:numa_nodes": "2"}})
            body = {"server": {"name": "n", "imageRef": TEST_IMAGE_ID, "flavorRef": f["id"]}}
            sid = (await nova.post(f"{C}/servers", body))["server"]["id"]
            assert (await wait_status(nova, sid, "ACTIVE", "ERROR"))["status"] == "ACTIVE"
            claim = manager_of(daemon).instances.require(sid).claim
            assert sorted(c.host_node for c in claim.numa) == [0, 1]
            assert [c.memory_mb for c in claim.numa] == [256, 256]
            await nova.post(f"{C}/flavors/{f['id']}/os-extra_specs",
                            {"extra_specs": {"hw:numa_nodes": "3"}})
            sid = (await nova.post(f"{C}/servers", body))["server"]["id"]
            s = await wait_status(nova, sid, "ERROR")
            assert "ExtraSpecsFilter: hw:numa_nodes=3 but the host has 2" in s["fault"]["message"]
        finally:
            await nova.close()
