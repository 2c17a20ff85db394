"""The network data plane is built in the background: the API answers first, honestly.

A start rebuilds the namespace, bridges, DHCP listeners and nftables from the records; the API
answers meanwhile from the records, /healthz says the data plane is still being built, and a
write that needs a sync waits for the namespace rather than building into one not there yet.
"""
from __future__ import annotations

import asyncio

from appliance.client import MonostackClient
from appliance.network.netlink import DataPlane
from appliance.service import Appliance
from tests.api.network.conftest import needs_root
from tests.daemon import ADMIN_PASSWORD, InProcessDaemon, remove_namespace, wait_for, write_config

N = "/network/v2.0"


@needs_root
async def test_the_api_answers_while_the_data_plane_is_built(tmp_path, monkeypatch):
    _, config = write_config(tmp_path, components=["network"])
    async with InProcessDaemon(config):  # the records of a bootstrapped appliance
        pass
    gate, reached = asyncio.Event(), asyncio.Event()
    real = DataPlane.ensure_namespace

    async def slow_namespace(self):
        reached.set()
        await gate.wait()
        await real(self)

    monkeypatch.setattr(DataPlane, "ensure_namespace", slow_namespace)
    appliance = Appliance(config, components=["network"])
    await appliance.startup(settle=False)
    client = MonostackClient(socket_path=config.api.socket)
    dp = DataPlane(config.network.namespace)
    try:
        await asyncio.wait_for(reached.wait(), 30)
        await client.login("admin", ADMIN_PASSWORD, "admin")
        health = await client.get("/healthz")
        assert health["components"]["network"] == \
            "starting: building the data plane (namespace, bridges, DHCP, nftables)"
        before = (await client.get(f"{N}/networks"))["networks"]
        assert [n["name"] for n in before] == ["private"]  # the records answer
        groups = (await client.get(f"{N}/security-groups"))["security_groups"]
        assert [g["name"] for g in groups] == ["default"]

        async def create() -> None:
            net = (await client.post(f"{N}/networks", {"network": {"name": "n"}}))["network"]
            await client.post(f"{N}/subnets", {"subnet": {
                "network_id": net["id"], "ip_version": 4, "cidr": "10.9.0.0/24"}})

        creating = asyncio.create_task(create())
        gate.set()
        await asyncio.wait_for(creating, 60)
        await wait_for(lambda: _network_ok(client))
        addresses = {a for b in await dp.list_bridges() for a in b.addresses}
        assert "10.9.0.1/24" in addresses  # built into the namespace once it was there
    finally:
        gate.set()
        await dp.close()
        await client.close()
        await appliance.shutdown()
        remove_namespace(config)


async def _network_ok(client) -> bool:
    return (await client.get("/healthz"))["components"]["network"].startswith("ok")


@needs_root
async def test_a_data_plane_that_cannot_be_built_is_reported_and_the_api_still_answers(
        tmp_path, monkeypatch):
    from appliance.errors import MonostackError
    _, config = write_config(tmp_path, components=["network"])

    async def refused(self):
        raise MonostackError(f"cannot create namespace {self.namespace}: Operation not permitted")

    monkeypatch.setattr(DataPlane, "ensure_namespace", refused)
    appliance = Appliance(config, components=["network"])
    await appliance.startup()  # settles: the failure is the verdict, nothing hangs
    client = MonostackClient(socket_path=config.api.socket)
    try:
        await appliance.ctx.identity.bootstrap("admin", ADMIN_PASSWORD, "admin")
        await client.login("admin", ADMIN_PASSWORD, "admin")
        health = await client.get("/healthz")
        assert health["status"] == "degraded"
        assert health["components"]["network"] == (
            "failed: the data plane could not be built: cannot create namespace "
            f"{config.network.namespace}: Operation not permitted")
        assert (await client.get(f"{N}/networks"))["networks"] == []  # records still answer
    finally:
        await client.close()
        await appliance.shutdown()
        remove_namespace(config)
