"""LibvirtDriver on qemu:///system with a real TCG guest: console stream both ways, console log,
lifecycle events (including a power-off from inside the guest), pause/suspend, live snapshot,
reboot, destroy. Everything it makes is removed in `finally`, even on failure."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid as uuidlib

import libvirt
import pytest

from appliance.compute.driver import (
    DirectBoot, DiskSpec, DomainSpec, DomainState, HypervisorType, LifecycleEvent,
    LifecycleEventKind,
)
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.errors import NotFound

from .guest import make_guest_files

pytestmark = pytest.mark.integration
URI = "qemu:///system"


def _libvirt_available() -> bool:
    try:
        libvirt.open(URI).close()
        return True
    except libvirt.libvirtError:
        return False


if not _libvirt_available():
    pytest.skip("qemu:///system is not reachable", allow_module_level=True)


async def read_until(console, needle: bytes, timeout: float) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            chunk = await console.read()
            assert chunk, f"console ended before {needle!r}; got {seen[-500:]!r}"
            seen += chunk
    return seen


async def next_event(events, uuid: str, kind: LifecycleEventKind, timeout: float = 60
                     ) -> LifecycleEvent:
    async with asyncio.timeout(timeout):
        async for ev in events:
            if ev.uuid == uuid and ev.event == kind:
                return ev
    raise AssertionError("event stream ended")


@pytest.fixture
async def guest():
    uuid = str(uuidlib.uuid4())
    files = make_guest_files(uuid)
    driver = LibvirtDriver(URI, domain_type=HypervisorType.QEMU)
    await driver.connect()
    spec = DomainSpec(
        uuid=uuid, name=f"monostack-test-{uuid[:8]}", vcpus=1, memory_mib=256,
        disks=[DiskSpec(files.disk)], metadata={"project_id": "integration", "test": uuid},
        console_log_path=files.console_log,
        direct_boot=DirectBoot(files.kernel, files.initrd, "console=ttyS0 panic=-1 quiet"))
    try:
        yield driver, spec, files
    finally:
        try:
            await driver.destroy(uuid)
        finally:
            await driver.close()
            files.remove()


async def test_real_guest_console_events_and_lifecycle(guest):
    driver, spec, files = guest
    uuid = spec.uuid
    events = driver.events()
    await driver.spawn(spec)
    assert (await next_event(events, uuid, LifecycleEventKind.STARTED)).detail == "booted"
    assert await driver.state(uuid) == DomainState.RUNNING
    assert {d.uuid: d.metadata for d in await driver.list_domains()}[uuid]["test"] == uuid

    console = await driver.console_stream(uuid)
    try:
        await read_until(console, files.marker.encode(), timeout=120)
        await console.write(f"hello-{uuid}\n".encode())
        await read_until(console, f"ECHO:hello-{uuid}".encode(), timeout=30)
    finally:
        await console.close()
    with open(files.console_log, "rb") as f:
        assert files.marker.encode() in f.read()  # virtlogd keeps it for os-getConsoleOutput

    stats = await driver.stats(uuid)
    assert stats.cpu_time_ns > 0 and stats.memory_actual_kib == 256 * 1024

    await driver.pause(uuid)
    assert (await next_event(events, uuid, LifecycleEventKind.SUSPENDED)).detail == "paused"
    assert await driver.state(uuid) == DomainState.PAUSED
    await driver.unpause(uuid)
    await next_event(events, uuid, LifecycleEventKind.RESUMED)

    snap = os.path.join(files.directory, "snap.qcow2")
    result = await driver.snapshot_disk(uuid, snap)
    assert result.live
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", snap],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 16 << 20
    subprocess.run(["qemu-img", "compare", "-U", files.disk, snap], check=True,
                   capture_output=True)

    await driver.suspend(uuid)
    assert (await next_event(events, uuid, LifecycleEventKind.STOPPED)).detail == "saved"
    assert await driver.state(uuid) == DomainState.SUSPENDED
    await driver.resume(uuid)
    assert (await next_event(events, uuid, LifecycleEventKind.STARTED)).detail == "restored"

    await driver.reboot(uuid, hard=True)
    await next_event(events, uuid, LifecycleEventKind.STARTED)
    console = await driver.console_stream(uuid)
    try:
        await read_until(console, files.marker.encode(), timeout=120)
        # the guest powers itself off: the state change must reach us as an event
        await console.write(b"poweroff\n")
        ev = await next_event(events, uuid, LifecycleEventKind.STOPPED, timeout=60)
        assert ev.detail == "shutdown"
    finally:
        await console.close()
    assert await driver.state(uuid) == DomainState.SHUTOFF

    await driver.power_on(uuid)
    await next_event(events, uuid, LifecycleEventKind.STARTED)
    # busybox init has no ACPI handler: graceful times out, then the driver stops it hard
    assert await driver.power_off(uuid, graceful=True, timeout=2) is False
    assert (await next_event(events, uuid, LifecycleEventKind.STOPPED)).detail == "destroyed"

    await driver.destroy(uuid)
    await next_event(events, uuid, LifecycleEventKind.UNDEFINED)
    with pytest.raises(NotFound):
        await driver.state(uuid)
    assert uuid not in {d.uuid for d in await driver.list_domains()}


async def test_domain_type_detection_and_host_info():
    driver = LibvirtDriver(URI, probe_timeout=10)
    await driver.connect()
    try:
        # this machine: /dev/kvm opens and libvirt offers kvm, but a guest kernel never gets
        # past the firmware under it (kvm-pvm); the boot probe sees that and picks TCG
        assert driver.domain_type in (HypervisorType.KVM, HypervisorType.QEMU)
        info = await driver.host_info()
        assert info.hypervisor_type == driver.domain_type
        assert info.cpus == os.cpu_count()
        assert info.numa_cells and sum(len(c.cpus) for c in info.numa_cells) == info.cpus
        assert info.arch == "x86_64"
    finally:
        await driver.close()
