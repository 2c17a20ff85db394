from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.daemon import InProcessDaemon, write_config

# Real guests run as libvirt-qemu, which cannot traverse pytest's 0700 tmp dirs: tests that
# hand files to qemu:///system put them under this traversable root instead.
QEMU_TEST_ROOT = Path("/var/lib/monostack-test")


@pytest.fixture
def qemu_dir():
    path = QEMU_TEST_ROOT / uuid.uuid4().hex[:12]
    path.mkdir(parents=True, mode=0o755)
    QEMU_TEST_ROOT.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def core_daemon(tmp_path):
    """Identity and API only: the foundation with no components."""
    _, config = write_config(tmp_path, components=["core"])
    async with InProcessDaemon(config, components=[]) as daemon:
        yield daemon


@pytest.fixture
async def admin(core_daemon):
    client = await core_daemon.admin_client()
    try:
        yield client
    finally:
        await client.close()
