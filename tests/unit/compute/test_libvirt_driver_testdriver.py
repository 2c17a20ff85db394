"""LibvirtDriver verbs over libvirt's test:///default (no guests run; state machine is real)."""
import asyncio
import json
import subprocess
import uuid as uuidlib

import libvirt
import pytest

from appliance.compute.driver import (
    ComputeDriver, DiskSpec, DomainSpec, DomainState, HypervisorType, LifecycleEventKind, NicSpec,
)
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.errors import Conflict, HypervisorError, Invalid, NotFound, ServiceUnavailable


@pytest.fixture
async def driver():
    d = LibvirtDriver("test:///default")
    await d.connect()
    made: list[str] = []
    d.made = made  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        for u in made:
            await d.destroy(u)
        await d.close()


def new_spec(d, **kw) -> DomainSpec:
    u = str(uuidlib.uuid4())
    d.made.append(u)
    base = dict(uuid=u, name=f"instance-{u[:8]}", vcpus=1, memory_mib=64,
                disks=[DiskSpec(f"/nonexistent/{u}/disk.qcow2")],
                nics=[NicSpec("52:54:00:00:00:01", f"tap{u[:8]}", 1450)],
                metadata={"project_id": "p1", "flavor": "m1.tiny"})
    base.update(kw)
    return DomainSpec(**base)


async def test_is_a_compute_driver_declaring_test_limits(driver):
    assert isinstance(driver, ComputeDriver)
    caps = driver.capabilities
    assert caps.supports_pause and caps.supports_suspend and caps.supports_lifecycle_events
    assert not caps.supports_serial_console and not caps.supports_hotplug_disk
    assert not caps.supports_hotplug_nic and not caps.supports_live_snapshot
    assert not caps.runs_guests
    assert await driver.detect_domain_type() == HypervisorType.TEST


async def test_host_info_reads_cpus_numa_and_versions(driver):
    info = await driver.host_info()
    assert info.hypervisor_type == HypervisorType.TEST
    assert info.cpus == 16 and info.memory_mib > 0
    assert [c.id for c in info.numa_cells] == [0, 1]
    assert info.numa_cells[0].cpus == tuple(range(8))
    assert info.libvirt_version.count(".") == 2


async def test_spawn_defines_starts_and_lists_with_metadata(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    assert await driver.state(spec.uuid) == DomainState.RUNNING
    listed = {d.uuid: d for d in await driver.list_domains()}
    assert listed[spec.uuid].name == spec.name
    assert listed[spec.uuid].state == DomainState.RUNNING
    assert listed[spec.uuid].metadata == {"project_id": "p1", "flavor": "m1.tiny"}


async def test_spawn_of_an_existing_uuid_is_a_conflict_and_keeps_the_domain(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    with pytest.raises(Conflict):
        await driver.spawn(spec)
    assert await driver.state(spec.uuid) == DomainState.RUNNING


async def test_failed_start_leaves_nothing_behind(driver, monkeypatch):
    spec = new_spec(driver)

    def fail(self, flags=0):
        raise libvirt.libvirtError("qemu exploded")
    monkeypatch.setattr(libvirt.virDomain, "create", fail)
    with pytest.raises(HypervisorError):
        await driver.spawn(spec)
    with pytest.raises(NotFound):
        await driver.state(spec.uuid)
    assert spec.uuid not in {d.uuid for d in await driver.list_domains()}


async def test_invalid_spec_is_refused_before_libvirt(driver):
    spec = new_spec(driver, name="bad\x00name")
    with pytest.raises(Invalid):
        await driver.spawn(spec)
    with pytest.raises(NotFound):
        await driver.state(spec.uuid)


async def test_hostile_name_survives_libvirt_round_trip(driver):
    hostile = 'web <1> & "x"]]>\''
    spec = new_spec(driver, name=hostile, metadata={"display_name": hostile})
    await driver.spawn(spec)
    listed = {d.uuid: d for d in await driver.list_domains()}
    assert listed[spec.uuid].name == hostile
    assert listed[spec.uuid].metadata == {"display_name": hostile}


async def test_pause_unpause_and_wrong_state_conflicts(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    await driver.pause(spec.uuid)
    assert await driver.state(spec.uuid) == DomainState.PAUSED
    with pytest.raises(Conflict):
        await driver.pause(spec.uuid)
    await driver.unpause(spec.uuid)
    assert await driver.state(spec.uuid) == DomainState.RUNNING
    with pytest.raises(Conflict):
        await driver.unpause(spec.uuid)


async def test_suspend_is_managed_save_and_resume_restores(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    await driver.suspend(spec.uuid)
    assert await driver.state(spec.uuid) == DomainState.SUSPENDED
    with pytest.raises(Conflict):
        await driver.pause(spec.uuid)
    await driver.resume(spec.uuid)
    assert await driver.state(spec.uuid) == DomainState.RUNNING


async def test_power_off_on_and_idempotence(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    assert await driver.power_off(spec.uuid, graceful=True, timeout=5) is True
    assert await driver.state(spec.uuid) == DomainState.SHUTOFF
    assert await driver.power_off(spec.uuid) is True
    await driver.power_on(spec.uuid)
    await driver.power_on(spec.uuid)
    assert await driver.state(spec.uuid) == DomainState.RUNNING
    assert await driver.power_off(spec.uuid, graceful=False) is False
    assert await driver.state(spec.uuid) == DomainState.SHUTOFF
    with pytest.raises(Conflict):
        await driver.reboot(spec.uuid)


async def test_soft_and_hard_reboot_end_running(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    await driver.reboot(spec.uuid)
    assert await driver.state(spec.uuid) == DomainState.RUNNING
    await driver.reboot(spec.uuid, hard=True)
    assert await driver.state(spec.uuid) == DomainState.RUNNING


async def test_destroy_is_idempotent_and_can_keep_the_definition(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    await driver.destroy(spec.uuid, undefine=False)
    assert await driver.state(spec.uuid) == DomainState.SHUTOFF
    await driver.destroy(spec.uuid)
    await driver.destroy(spec.uuid)
    with pytest.raises(NotFound):
        await driver.state(spec.uuid)


async def test_destroy_removes_a_suspended_domain_and_its_save_image(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    await driver.suspend(spec.uuid)
    await driver.destroy(spec.uuid)
    with pytest.raises(NotFound):
        await driver.state(spec.uuid)


async def test_stats_running_and_stopped(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    s = await driver.stats(spec.uuid)
    assert s.cpu_time_ns > 0 and s.memory_actual_kib == 64 * 1024
    assert s.disk_read_bytes > 0 and s.net_rx_bytes > 0  # the test driver's made-up counters
    await driver.power_off(spec.uuid)
    s = await driver.stats(spec.uuid)
    assert s.cpu_time_ns == 0 and s.net_tx_bytes == 0
    with pytest.raises(NotFound):
        await driver.stats(str(uuidlib.uuid4()))


async def test_lifecycle_events_arrive_in_order(driver):
    events = driver.events()
    spec = new_spec(driver)
    await driver.spawn(spec)
    await driver.pause(spec.uuid)
    await driver.unpause(spec.uuid)
    await driver.suspend(spec.uuid)
    await driver.resume(spec.uuid)
    await driver.destroy(spec.uuid)
    seen = []
    async with asyncio.timeout(5):
        async for ev in events:
            if ev.uuid != spec.uuid:
                continue
            seen.append((ev.event, ev.detail))
            if ev.event == LifecycleEventKind.UNDEFINED:
                break
    assert seen == [
        (LifecycleEventKind.DEFINED, "added"), (LifecycleEventKind.STARTED, "booted"),
        (LifecycleEventKind.SUSPENDED, "paused"), (LifecycleEventKind.RESUMED, "unpaused"),
        (LifecycleEventKind.STOPPED, "saved"), (LifecycleEventKind.STARTED, "booted"),
        (LifecycleEventKind.STOPPED, "destroyed"), (LifecycleEventKind.UNDEFINED, "removed"),
    ]


async def test_close_ends_event_iteration(driver):
    events = driver.events()
    await driver.close()
    async with asyncio.timeout(2):
        assert [e async for e in events] == []


async def test_unsupported_verbs_say_so(driver):
    spec = new_spec(driver)
    await driver.spawn(spec)
    with pytest.raises(ServiceUnavailable):
        await driver.console_stream(spec.uuid)
    with pytest.raises(ServiceUnavailable):
        await driver.attach_disk(spec.uuid, DiskSpec("/v/vol", target="vdb"))
    with pytest.raises(ServiceUnavailable):
        await driver.detach_nic(spec.uuid, "52:54:00:00:00:01")


async def test_verbs_on_unknown_domain_are_not_found(driver):
    u = str(uuidlib.uuid4())
    for verb in (driver.power_on, driver.pause, driver.unpause, driver.suspend, driver.resume,
                 driver.state):
        with pytest.raises(NotFound):
            await verb(u)


async def test_snapshot_copies_and_flattens_the_root_disk(driver, tmp_path):
    base = tmp_path / "base.qcow2"
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 0 1M", str(base)], check=True,
                   capture_output=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base),
                    str(overlay)], check=True)
    spec = new_spec(driver, disks=[DiskSpec(str(overlay))])
    await driver.spawn(spec)
    dest = tmp_path / "snap.qcow2"
    result = await driver.snapshot_disk(spec.uuid, str(dest))
    assert result.path == str(dest) and result.size_bytes == dest.stat().st_size
    assert result.live is False  # the test driver copies the file
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(dest)],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert info["virtual-size"] == 16 << 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.qcow2", "overlay.qcow2",
                                                          "snap.qcow2"]


async def test_snapshot_of_missing_disk_file_is_not_found(driver, tmp_path):
    spec = new_spec(driver)
    await driver.spawn(spec)
    with pytest.raises(NotFound):
        await driver.snapshot_disk(spec.uuid, str(tmp_path / "snap.qcow2"))
    assert list(tmp_path.iterdir()) == []


async def test_a_lost_connection_is_made_again_in_the_background(driver):
    """What the close callback does when libvirtd goes away, driven by hand (the test driver
    never closes): calls answer 503 until the background reconnect succeeds, lifecycle events
    flow on the new connection, and the owner is told so it can re-read power states."""
    told = []
    driver.on_reconnect = lambda: told.append(driver.connections)
    spec = new_spec(driver)
    events = driver.events()
    driver._lost(driver._conn, "simulated: libvirtd closed the connection")
    assert not driver.connected
    with pytest.raises(ServiceUnavailable):
        driver._c()
    for _ in range(100):
        if driver.connected:
            break
        await asyncio.sleep(0.05)
    assert driver.connected and told == [2]
    await driver.spawn(spec)  # a verb on the new connection, and its event arrives
    async with asyncio.timeout(5):
        async for ev in events:
            if ev.uuid == spec.uuid and ev.event == LifecycleEventKind.STARTED:
                break
    await events.aclose()
    await driver.close()
    assert not driver.connected
    await asyncio.sleep(0.6)
    assert not driver.connected, "closed on purpose: no reconnect"
    await driver.connect()  # the fixture's teardown destroys what we made
