"""kill -9 the daemon in the middle of a build and of a delete; after a restart every instance
is in a final, truthful state and no claim leaks (test:///default: the store side; the
real-libvirt version, no leaked domain or disk, is tests/integration/compute)."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import NotFound
from tests.compute_support import CONFIG_COMPONENTS, TEST_IMAGE_ID, seed_test_image
from tests.daemon import DaemonProcess, run_init, wait_for, write_config

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}


async def _client(daemon):
    from tests.daemon import ADMIN_PASSWORD
    c = daemon.client()
    await c.login("admin", ADMIN_PASSWORD, "admin")
    return c


async def _state(c, sid):
    return (await c.get(f"{C}/servers/{sid}", headers=H))["server"]


@pytest.fixture
def setup(tmp_path):
    """start(**env) → a `tests.serve_slow` daemon (real images/volumes/compute components);
    the first start seeds the test image through the Glance API."""
    path, config = write_config(tmp_path, components=CONFIG_COMPONENTS,
                                extra={"compute": {"graceful_shutdown_timeout": 1}})
    run_init(path)
    daemons: list[DaemonProcess] = []

    async def start(**env):
        d = DaemonProcess(path, config, env=env, serve_module="tests.serve_slow")
        d.start()
        if not daemons:
            c = await _client(d)
            try:
                await seed_test_image(c, Path(tmp_path))
            finally:
                await c.close()
        daemons.append(d)
        return d

    try:
        yield start
    finally:
        for d in daemons:
            d.kill()


async def test_kill_during_build_and_delete_then_restart_is_truthful(setup):
    d = await setup(MONOSTACK_TEST_SPAWN_DELAY="30")
    c = await _client(d)
    try:
        building = (await c.post(f"{C}/servers", {"server": {
            "name": "halfbuilt", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
        await wait_for(lambda: _is(c, building, "spawning"), timeout=20)
    finally:
        await c.close()
    d.kill()  # SIGKILL in the middle of spawn

    d = await setup()
    c = await _client(d)
    try:
        s = await wait_for(lambda: _final(c, building), timeout=20)
        assert s["status"] == "ACTIVE", s  # the build was re-driven to the end
        hv = (await c.get(f"{C}/os-hypervisors/statistics"))["hypervisor_statistics"]
        assert hv["vcpus_used"] == 1 and hv["memory_mb_used"] - 512 == 128
    finally:
        await c.close()
    d.stop()

    d = await setup(MONOSTACK_TEST_DESTROY_DELAY="30")
    c = await _client(d)
    try:
        await c.delete(f"{C}/servers/{building}")
        await wait_for(lambda: _is(c, building, "deleting"), timeout=10)
    finally:
        await c.close()
    d.kill()  # SIGKILL in the middle of the delete (destroy is slowed)

    d = await setup()
    c = await _client(d)
    try:
        async def gone():
            try:
                await _state(c, building)
            except NotFound:
                return True
        await wait_for(gone, timeout=20)
        hv = (await c.get(f"{C}/os-hypervisors/statistics"))["hypervisor_statistics"]
        assert hv["vcpus_used"] == 0 and hv["memory_mb_used"] == 512 and hv["running_vms"] == 0
        assert not (d.config.compute.instances_dir / building).exists()
    finally:
        await c.close()


async def test_active_instance_survives_restart_and_is_running_again(setup):
    d = await setup()
    c = await _client(d)
    try:
        sid = (await c.post(f"{C}/servers", {"server": {
            "name": "steady", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
        await wait_for(lambda: _is_status(c, sid, "ACTIVE"), timeout=20)
    finally:
        await c.close()
    d.kill()
    d = await setup()
    c = await _client(d)
    try:
        s = await _state(c, sid)
        assert s["status"] == "ACTIVE" and s["OS-EXT-STS:power_state"] == 1
        await c.post(f"{C}/servers/{sid}/action", {"os-stop": None})
        await wait_for(lambda: _is_status(c, sid, "SHUTOFF"), timeout=20)
    finally:
        await c.close()


async def _is(c, sid, task_state):
    return (await _state(c, sid))["OS-EXT-STS:task_state"] == task_state


async def _is_status(c, sid, status):
    return (await _state(c, sid))["status"] == status


async def _final(c, sid):
    s = await _state(c, sid)
    return s if s["status"] in ("ACTIVE", "ERROR") and not s["OS-EXT-STS:task_state"] else None
