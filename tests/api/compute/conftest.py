"""A compute daemon over libvirt test:///default with the real image and volume components;
the small test image (TEST_IMAGE_ID) is uploaded through the Glance API at start."""
from __future__ import annotations

import pytest

from tests.compute_support import COMPONENTS, CONFIG_COMPONENTS, TEST_IMAGE_ID, seed_test_image
from tests.daemon import InProcessDaemon, wait_for, write_config

__all__ = ["TEST_IMAGE_ID", "make_daemon", "manager_of", "wait_status"]


class ComputeDaemon(InProcessDaemon):
    """InProcessDaemon that also seeds the public test image (as admin, through Glance)."""

    def __init__(self, config, scratch) -> None:
        super().__init__(config, components=COMPONENTS)
        self.scratch = scratch

    async def __aenter__(self) -> "ComputeDaemon":
        await super().__aenter__()
        try:
            client = await self.admin_client()
            try:
                await seed_test_image(client, self.scratch)
            finally:
                await client.close()
        except BaseException:
            await super().__aexit__(None, None, None)
            raise
        return self


async def make_daemon(tmp_path, compute: dict | None = None) -> ComputeDaemon:
    _, config = write_config(tmp_path, components=CONFIG_COMPONENTS,
                             extra={"compute": {"graceful_shutdown_timeout": 1, **(compute or {})}})
    return ComputeDaemon(config, tmp_path)


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
    return daemon.appliance.ctx.components.compute.manager


async def wait_status(client, server_id: str, *statuses: str, timeout: float = 30.0) -> dict:
    async def check():
        s = (await client.get(f"/compute/v2.1/servers/{server_id}",
                          headers={"OpenStack-API-Version": "compute 2.60"}))["server"]
        return s if s["status"] in statuses else None
    return await wait_for(check, timeout=timeout, interval=0.05)
