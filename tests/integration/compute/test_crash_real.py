"""kill -9 with real libvirt (qemu:///system, TCG): a `monostack serve` process (tests.serve_slow,
with the real image, volume and compute components) is killed in the middle of a build and in
the middle of a delete. After each restart the instance is in a final, truthful state and no
domain or disk file is leaked: checked in libvirt itself and in the instances directory.

The build is killed at its worst moment: the domain runs (spawn returned) but the build has not
recorded it. The delete is killed before the domain was destroyed.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from pathlib import Path

import libvirt
import pytest

from appliance.errors import NotFound
from tests.compute_support import CONFIG_COMPONENTS, upload_image
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, wait_for, write_config
from tests.guest_image import GuestImageBuildError, ensure_guest_image, make_traversable_dir

pytestmark = pytest.mark.integration

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}
URI = "qemu:///system"


def _libvirt_ok() -> bool:
    try:
        libvirt.open(URI).close()
        return True
    except libvirt.libvirtError:
        return False


def domain_state(sid: str) -> int | None:
    """libvirt's state of the domain with this UUID, None when there is no such domain."""
    conn = libvirt.open(URI)
    try:
        return conn.lookupByUUIDString(sid).state()[0]
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def _destroy(sid: str) -> None:
    conn = libvirt.open(URI)
    try:
        dom = conn.lookupByUUIDString(sid)
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


@pytest.fixture
def crashable():
    """start(**env) → a started serve_slow daemon on qemu:///system (a fresh process each
    call, same state); everything is killed and every domain it made destroyed at the end."""
    if not _libvirt_ok():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    try:
        ensure_guest_image()
    except GuestImageBuildError as exc:
        pytest.skip(f"guest image build failed: {exc}")
    base = make_traversable_dir(Path("/var/lib/monostack-test") / ("crash-" + uuid.uuid4().hex[:12]))
    (base / "daemon").mkdir()
    path, config = write_config(base / "daemon", components=CONFIG_COMPONENTS, extra={
        "compute": {"libvirt_uri": URI, "instances_dir": str(base / "instances"),
                    "reserved_host_memory_mb": 0, "graceful_shutdown_timeout": 5},
        "storage": {"images_dir": str(base / "images"), "volumes_dir": str(base / "volumes")},
        "log": {"level": "INFO"}})
    run_init(path)
    daemons: list[DaemonProcess] = []
    servers: list[str] = []

    def start(**env: str) -> DaemonProcess:
        d = DaemonProcess(path, config, env=env, serve_module="tests.serve_slow")
        d.start()
        daemons.append(d)
        return d

    start.servers = servers  # type: ignore[attr-defined]
    start.instances_dir = base / "instances"  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for d in daemons:
            d.kill()
        for sid in servers:
            _destroy(sid)
        shutil.rmtree(base, ignore_errors=True)


async def _client(d: DaemonProcess):
    c = d.client()
    await c.login("admin", ADMIN_PASSWORD, "admin")
    return c


async def _server(c, sid: str) -> dict:
    return (await c.get(f"{C}/servers/{sid}", headers=H))["server"]


async def _task_is(c, sid: str, task_state: str) -> bool:
    return (await _server(c, sid))["OS-EXT-STS:task_state"] == task_state


async def test_kill_9_mid_build_and_mid_delete_leaves_truth_and_no_leaks(crashable):
    start = crashable
    instances_dir: Path = start.instances_dir

    # 1. build, killed while the domain runs but the build has not recorded it
    d = start(MONOSTACK_TEST_SPAWN_HOLD="60")
    c = await _client(d)
    try:
        image_id = await upload_image(c, ensure_guest_image().qcow2, name="crash-guest")
        flavor = (await c.post(f"{C}/flavors", {"flavor": {
            "name": "crash", "ram": 192, "vcpus": 1, "disk": 1, "id": None}}))["flavor"]["id"]
        sid = (await c.post(f"{C}/servers", {"server": {
            "name": "halfbuilt", "imageRef": image_id, "flavorRef": flavor,
            "config_drive": True}}))["server"]["id"]
        start.servers.append(sid)
        await wait_for(lambda: domain_state(sid) == libvirt.VIR_DOMAIN_RUNNING, timeout=60)
        assert await _task_is(c, sid, "spawning")
    finally:
        await c.close()
    d.kill()  # SIGKILL: the guest keeps running, our record says "spawning"
    assert domain_state(sid) == libvirt.VIR_DOMAIN_RUNNING

    # 2. restart: the build is re-driven to the end (the half-made domain replaced, not doubled)
    d = start()
    c = await _client(d)
    try:
        async def final():
            s = await _server(c, sid)
            return s if s["status"] in ("ACTIVE", "ERROR") and not \
                s["OS-EXT-STS:task_state"] else None
        s = await wait_for(final, timeout=90, interval=0.3)
        assert s["status"] == "ACTIVE", s.get("fault")
        assert s["OS-EXT-STS:power_state"] == 1
        assert domain_state(sid) == libvirt.VIR_DOMAIN_RUNNING
        conn = libvirt.open(URI)
        try:
            names = [dom.name() for dom in conn.listAllDomains()]
        finally:
            conn.close()
        assert names.count(f"ms-{sid}") == 1
        assert (instances_dir / sid / "disk").exists()
        hv = (await c.get(f"{C}/os-hypervisors/statistics"))["hypervisor_statistics"]
        assert hv["running_vms"] == 1 and hv["vcpus_used"] == 1

        async def booted():
            out = (await c.post(f"{C}/servers/{sid}/action",
                                {"os-getConsoleOutput": {}}))["output"]
            return "instance-name: halfbuilt" in out
        await wait_for(booted, timeout=120, interval=1)
    finally:
        await c.close()
    d.stop()

    # 3. delete, killed before the domain is destroyed
    d = start(MONOSTACK_TEST_DESTROY_DELAY="60")
    c = await _client(d)
    try:
        await c.delete(f"{C}/servers/{sid}")
        await wait_for(lambda: _task_is(c, sid, "deleting"), timeout=20)
        await asyncio.sleep(0.5)  # inside the slowed destroy
    finally:
        await c.close()
    d.kill()
    assert domain_state(sid) is not None  # the kill really came before the destroy

    # 4. restart: the delete is finished; nothing of the instance is left anywhere
    d = start()
    c = await _client(d)
    try:
        async def gone():
            try:
                await _server(c, sid)
            except NotFound:
                return True
        await wait_for(gone, timeout=60, interval=0.3)
        assert domain_state(sid) is None
        assert not (instances_dir / sid).exists()
        assert [p.name for p in instances_dir.iterdir()] == []
        hv = (await c.get(f"{C}/os-hypervisors/statistics"))["hypervisor_statistics"]
        assert hv["running_vms"] == 0 and hv["vcpus_used"] == 0
        assert (await c.get(f"{C}/servers"))["servers"] == []
    finally:
        await c.close()
    d.stop()


def _define_leftover(sid: str, appliance_id: str) -> None:
    """A defined, never started domain whose metadata names instance `sid` and the appliance
    `appliance_id`: what a define that landed after its server was deleted leaves."""
    ns = "https://monostack.dev/xmlns/instance/1"
    xml = (f"<domain type='qemu'><name>ms-{sid}</name><uuid>{sid}</uuid>"
           f"<memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
           f"<metadata><monostack:instance xmlns:monostack='{ns}'>"
           f"<monostack:entry key='appliance-id'>{appliance_id}</monostack:entry>"
           f"<monostack:entry key='instance-id'>{sid}</monostack:entry>"
           f"</monostack:instance></metadata></domain>")
    conn = libvirt.open(URI)
    try:
        conn.defineXML(xml)
    finally:
        conn.close()


def _appliance_of(sid: str) -> str:
    conn = libvirt.open(URI)
    try:
        xml = conn.lookupByUUIDString(sid).XMLDesc(0)
    finally:
        conn.close()
    from appliance.compute.libvirt.domain_xml import parse_metadata
    return parse_metadata(xml)["appliance-id"]


async def _removed_event(c, sid: str) -> bool:
    events = (await c.get("/monostack/events?limit=2000"))["events"]
    return any(e["kind"] == "compute.orphan_removed" and e["resource_id"] == sid
               for e in events)


async def test_deleted_builds_and_leftover_domains_leak_nothing_of_ours_only(crashable):
    """Real libvirt, shared: a build stuck in spawn is deleted without waiting for it; a
    domain of ours whose server is gone is removed by the sweep (running) and at start; a
    domain of another appliance on the same libvirtd is never touched."""
    start = crashable
    foreign, leftover, leftover_at_start = (str(uuid.uuid4()) for _ in range(3))
    start.servers.extend([foreign, leftover, leftover_at_start])
    _define_leftover(foreign, str(uuid.uuid4()))  # another appliance's
    d = start(MONOSTACK_TEST_SPAWN_LANDS_LATE="10", MONOSTACK_TEST_ORPHAN_SWEEP="1")
    c = await _client(d)
    try:
        image_id = await upload_image(c, ensure_guest_image().qcow2, name="late-guest")
        flavor = (await c.post(f"{C}/flavors", {"flavor": {
            "name": "late", "ram": 192, "vcpus": 1, "disk": 1, "id": None}}))["flavor"]["id"]

        async def boot(name: str) -> str:
            sid = (await c.post(f"{C}/servers", {"server": {
                "name": name, "imageRef": image_id, "flavorRef": flavor}}))["server"]["id"]
            start.servers.append(sid)
            return sid

        stuck = await boot("stuck")
        await wait_for(lambda: _task_is(c, stuck, "spawning"), timeout=60)
        await c.delete(f"{C}/servers/{stuck}")

        async def gone():
            try:
                await _server(c, stuck)
            except NotFound:
                return True
        await wait_for(gone, timeout=8, interval=0.1)  # the stuck spawn is not waited for
        assert domain_state(stuck) is None

        kept = await boot("kept")  # its spawn lands after the stuck one's
        await wait_for(lambda: domain_state(kept) == libvirt.VIR_DOMAIN_RUNNING, timeout=90)
        mine = _appliance_of(kept)
        _define_leftover(leftover, mine)
        await wait_for(lambda: _removed_event(c, leftover), timeout=30, interval=0.2)
        assert domain_state(leftover) is None
        assert domain_state(kept) == libvirt.VIR_DOMAIN_RUNNING
        assert domain_state(foreign) is not None
        assert domain_state(stuck) is None  # its late define left nothing either
    finally:
        await c.close()
    d.stop()
    _define_leftover(leftover_at_start, mine)
    d = start()
    c = await _client(d)
    try:
        assert await _removed_event(c, leftover_at_start)  # removed during the start
        assert domain_state(leftover_at_start) is None
        assert domain_state(kept) is not None and domain_state(foreign) is not None
    finally:
        await c.close()
