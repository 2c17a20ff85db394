from __future__ import annotations

import pytest

from tests.api.compute.fakes import COMPONENTS
from tests.daemon import InProcessDaemon, wait_for, write_config


async def make_daemon(tmp_path, compute: dict | None = None):
    _, config = write_config(tmp_path, components=["images", "compute"],
                             extra={"compute": {"graceful_shutdown_timeout": 1, **(compute or {})}})
    return InProcessDaemon(config, components=COMPONENTS)


@pytest.fixture
async def compute_daemon(tmp_path):
    async with await make_daemon(tmp_path) as daemon:
        yield daemon


@pytest.fixture
async def nova(compute_daemon):
    client = await compute_daemon.admin_client()
    try:
        yield client
    finally:
        await client.close()


def manager_of(daemon):
    return daemon.appliance.ctx.components["compute"].manager


async def wait_status(client, server_id: str, *statuses: str, timeout: float = 30.0) -> dict:
    async def check():
        s = (await client.get(f"/compute/v2.1/servers/{server_id}",
                          headers={"OpenStack-API-Version": "compute 2.60"}))["server"]
        return s if s["status"] in statuses else None
    return await wait_for(check, timeout=timeout, interval=0.05)
