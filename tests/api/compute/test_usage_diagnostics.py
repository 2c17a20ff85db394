"""The live-load endpoints the operator console draws sparklines from: the monostack-usage
extension of os-hypervisors (host CPU % and memory from the driver) and Nova's admin server
diagnostics (2.48 shape, legacy flat keys below), both admin only."""
from __future__ import annotations

import pytest

from appliance.errors import Conflict, Forbidden, NotFound
from tests.api.compute.test_flavors_keypairs import member_client
from tests.api.compute.test_servers import C, H, action, boot
from tests.api.compute.conftest import wait_status


async def test_hypervisor_usage_reports_live_host_load(nova, compute_daemon):
    hv = (await nova.get(f"{C}/os-hypervisors", headers=H))["hypervisors"][0]
    first = (await nova.get(f"{C}/os-hypervisors/{hv['id']}/monostack-usage"))["usage"]
    second = (await nova.get(f"{C}/os-hypervisors/{hv['hypervisor_hostname']}/monostack-usage"))
    assert first["memory_mb"] > 0 and second["usage"]["memory_mb"] == first["memory_mb"]
    # test:///default: frozen CPU counters (no delta → unknown) and no node memory stats
    assert first["cpu_percent"] is None or 0 <= first["cpu_percent"] <= 100
    assert "memory_used_mb" in first
    with pytest.raises(NotFound):
        await nova.get(f"{C}/os-hypervisors/nope/monostack-usage")
    alice = await member_client(compute_daemon, nova)
    try:
        with pytest.raises(Forbidden):
            await alice.get(f"{C}/os-hypervisors/{hv['id']}/monostack-usage")
    finally:
        await alice.close()


async def test_server_diagnostics_from_driver_stats(nova, compute_daemon):
    s = await boot(nova, "diag")
    d = await nova.get(f"{C}/servers/{s['id']}/diagnostics", headers=H)
    assert d["state"] == "running" and d["driver"] == "libvirt" and d["num_cpus"] == 1
    assert d["memory_details"]["maximum"] == 128 and d["memory_details"]["used"] > 0
    assert d["cpu_details"][0]["time"] > 0
    assert {"read_bytes", "write_bytes"} <= set(d["disk_details"][0])
    assert {"rx_octets", "tx_octets"} <= set(d["nic_details"][0])
    legacy = await nova.get(f"{C}/servers/{s['id']}/diagnostics")
    assert legacy["cpu0_time"] > 0 and legacy["memory"] > 0 and "vda_read" in legacy
    await action(nova, s["id"], {"os-stop": None})
    await wait_status(nova, s["id"], "SHUTOFF")
    with pytest.raises(Conflict):
        await nova.get(f"{C}/servers/{s['id']}/diagnostics", headers=H)
    alice = await member_client(compute_daemon, nova)
    try:
        with pytest.raises((Forbidden, NotFound)):
            await alice.get(f"{C}/servers/{s['id']}/diagnostics", headers=H)
    finally:
        await alice.close()
