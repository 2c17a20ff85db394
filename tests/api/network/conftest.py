from __future__ import annotations

import os

import pytest

from tests.daemon import InProcessDaemon, write_config

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the data plane needs root (netns)")


@pytest.fixture
async def net_daemon(tmp_path):
    """A daemon with only the network component; its namespace is removed on exit."""
    _, config = write_config(tmp_path, components=["network"])
    async with InProcessDaemon(config) as daemon:
        yield daemon


@pytest.fixture
async def nadmin(net_daemon):
    client = await net_daemon.admin_client()
    try:
        yield client
    finally:
        await client.close()
