"""The build pipeline (compute/build.py) judged alone: built with only what it uses —
libvirt's test:///default driver, a real scheduler, real qcow2 files and config drives under
tmp_path — and small fakes of compute/progress.py's Progress and of the image, volume and
network seams. No manager, no store, no daemon."""
from __future__ import annotations

import dataclasses
import uuid as uuidlib
from pathlib import Path
from typing import Any

import pytest

from appliance.compute import disks, orphans, progress_meter
from appliance.compute.build import Builder
from appliance.compute.driver import DomainSpec, DomainState
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.compute.records import FlavorSnapshot, Instance, PowerState, Task, TaskState
from appliance.compute.records import VmState
from appliance.errors import BadRequest, HypervisorError, NotFound
from appliance.seams import AttachableVolume, BootImage, PortBinding
from tests.unit.compute.fakes import Records, scheduler_of

GiB = 1 << 30
FLAVOR = FlavorSnapshot(id="1", name="small", vcpus=1, ram=512, disk=2)


class Images:
    """The image service: one 1 GiB qcow2 image, "img"."""

    def __init__(self, tmp: Path) -> None:
        self.base = tmp / "base.qcow2"

    async def boot_source(self, image_id: str, project_id: str) -> BootImage:
        if image_id != "img":
            raise NotFound(f"Image {image_id} could not be found.")
        if not self.base.exists():
            await disks.create_blank(self.base, GiB)
        return BootImage(path=self.base, disk_format="qcow2", virtual_size=GiB)


class Network:
    """The network service as a build drives it: one port per instance on "net1"."""

    def __init__(self) -> None:
        self.allocated: dict[str, PortBinding] = {}
        self.plugged: list[tuple[str, str]] = []
        self.deallocated: list[str] = []

    async def allocate_ports(self, instance_id: str, project_id: str,
                             requested: list[dict[str, Any]], groups: list[str]
                             ) -> list[PortBinding]:
        port = PortBinding(port_id=f"port-{instance_id[:8]}", network_id="n1",
                           network_name="net1", mac="fa:16:3e:00:00:01",
                           tap_name=f"tap{instance_id[:8]}", mtu=1450,
                           fixed_ips=["10.0.0.5"])
        self.allocated[instance_id] = port
        return [port]

    async def plug(self, tap_name: str, port_id: str) -> None:
        self.plugged.append((tap_name, port_id))

    async def deallocate_ports(self, instance_id: str) -> None:
        self.deallocated.append(instance_id)
        self.allocated.pop(instance_id, None)

    async def network_data(self, instance_id: str) -> dict[str, Any]:
        return {"links": [{"id": "tap0", "type": "phy"}], "networks": [], "services": []}


class Volumes:
    """The volume service making a boot volume: its id is given at once, the copy waited
    for after."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.made: list[str] = []
        self.attached: dict[str, tuple[str, str]] = {}

    async def begin_boot_volume(self, *, image_id: str, project_id: str, size_gb: int,
                                name: str) -> str:
        vid = f"vol-{len(self.made)}"
        self.made.append(vid)
        return vid

    async def wait_available(self, volume_id: str, timeout: float = 3600.0) -> None:
        assert volume_id in self.made

    async def root_volume_for_boot(self, volume_id: str, project_id: str) -> AttachableVolume:
        return AttachableVolume(path=self.tmp / volume_id, format="raw", size_gb=1)

    async def mark_attached(self, volume_id: str, instance_id: str, device: str) -> None:
        self.attached[volume_id] = (instance_id, device)


class SpawnFails:
    """The test driver, except that a spawn fails as a qemu that cannot start does (the
    driver's contract: nothing of the domain is left)."""

    def __init__(self, driver: LibvirtDriver) -> None:
        self._driver = driver
        self.spawns = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    async def spawn(self, spec: DomainSpec) -> None:
        self.spawns += 1
        raise HypervisorError("qemu: could not open disk image")


@pytest.fixture
async def driver():
    d = LibvirtDriver("test:///default")
    await d.connect()
    d.made = []  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        for u in d.made:  # type: ignore[attr-defined]
            try:
                await d.destroy(u)
            except NotFound:
                pass
        await d.close()


class Pipeline:
    def __init__(self, driver: Any, tmp: Path, *, force_config_drive: bool = False,
                 images: bool = True) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.scheduler = scheduler_of(tmp)
        self.records = Records(driver, self.scheduler)
        self.network, self.volumes = Network(), Volumes(tmp)
        self.images = Images(tmp) if images else None
        self.tmp = tmp
        self.builder = Builder(
            self.records, driver, tmp, images=self.images, volumes=self.volumes,  # type: ignore[arg-type]
            network=self.network, claim=self.scheduler.claim,  # type: ignore[arg-type]
            hostname=lambda: "host-1", appliance_id=lambda: "app-1",
            password_of=lambda iid: "", force_config_drive=force_config_drive)

    def admitted(self, driver: Any, **kw: Any) -> tuple[Instance, Task]:
        """A BUILD record and its build task, as admission stores them."""
        fields: dict[str, Any] = {"image_id": "img", **kw}
        inst = Instance(id=str(uuidlib.uuid4()), name="vm", project_id="p1", user_id="u1",
                        flavor=FLAVOR, **fields)
        driver.made.append(inst.id)
        self.records.put(inst)
        return inst, Task(id=inst.id, instance_id=inst.id, action="build")


async def test_a_build_claims_binds_ports_makes_disks_and_ends_active(driver, tmp_path):
    p = Pipeline(driver, tmp_path)
    inst, task = p.admitted(driver, config_drive=True)

    await p.builder.build(task)

    # each step recorded in order, the end committed with the task's removal
    assert [t for _, t in p.records.trail] == [
        TaskState.NETWORKING, TaskState.NETWORKING, TaskState.BLOCK_DEVICE_MAPPING,
        TaskState.SPAWNING, None]
    assert p.records.finished == ["build"]
    assert (inst.vm_state, inst.power_state, inst.status) == (
        VmState.ACTIVE, PowerState.RUNNING, "ACTIVE")
    assert inst.launched_at is not None and inst.fault is None
    # the claim, on this host
    assert inst.claim is not None and inst.host == "host-1"
    assert p.scheduler.host_state().used_vcpus == 1
    # the port bound, its address shown, its tap plugged
    port = p.network.allocated[inst.id]
    assert inst.ports == [port]
    assert inst.addresses["net1"][0]["addr"] == "10.0.0.5"
    assert inst.addresses["net1"][0]["OS-EXT-IPS-MAC:mac_addr"] == port.mac
    assert p.network.plugged == [(port.tap_name, port.port_id)]
    # the disks: an overlay grown to the flavor's disk, a config drive
    d = disks.instance_dir(tmp_path, inst.id)
    assert await disks.virtual_size(d / "disk", "qcow2") == 2 * GiB
    assert (d / "disk.config").stat().st_size > 0
    assert not (d / "disk.tmp").exists()
    # the domain runs, marked as this appliance's
    assert await driver.state(inst.id) == DomainState.RUNNING
    listed = {x.uuid: x for x in await driver.list_domains()}
    assert listed[inst.id].metadata[orphans.APPLIANCE_KEY] == "app-1"
    assert listed[inst.id].metadata[orphans.INSTANCE_KEY] == inst.id
    # progress only forwards, through the domain's start
    assert progress_meter.BUILD_DOMAIN_STARTED in p.records.percents
    assert p.records.percents == sorted(p.records.percents)
    assert p.builder.spawning == set()


async def test_without_a_config_drive_asked_for_none_is_made_unless_forced(driver, tmp_path):
    p = Pipeline(driver, tmp_path)
    plain, task = p.admitted(driver)
    await p.builder.build(task)
    assert not (disks.instance_dir(tmp_path, plain.id) / "disk.config").exists()

    forced = Pipeline(driver, tmp_path / "forced", force_config_drive=True)
    inst, task = forced.admitted(driver)
    await forced.builder.build(task)
    assert (disks.instance_dir(tmp_path / "forced", inst.id) / "disk.config").exists()


async def test_a_failed_spawn_leaves_no_domain_and_cleanup_gives_everything_back(
        driver, tmp_path):
    failing = SpawnFails(driver)
    p = Pipeline(failing, tmp_path)
    inst, task = p.admitted(driver)

    with pytest.raises(HypervisorError, match="could not open disk"):
        await p.builder.build(task)

    assert failing.spawns == 1 and p.builder.spawning == set()
    assert p.records.trail[-1] == (VmState.BUILDING, TaskState.SPAWNING)
    assert p.records.finished == [] and p.network.plugged == []
    with pytest.raises(NotFound):
        await driver.state(inst.id)

    # what the task queue does with a failed build: everything the build took is released
    await p.builder.cleanup_resources(inst, keep_record=True)
    assert p.network.deallocated == [inst.id]
    assert (inst.ports, inst.addresses) == ([], {})
    assert not disks.instance_dir(tmp_path, inst.id).exists()


async def test_a_re_driven_build_starts_the_domain_over_and_keeps_its_claim(driver, tmp_path):
    p = Pipeline(driver, tmp_path)
    inst, task = p.admitted(driver)
    await p.builder.build(task)
    claim = inst.claim
    root = disks.instance_dir(tmp_path, inst.id) / "disk"
    root.write_bytes(b"written by the interrupted attempt")
    inst.vm_state, inst.task_state = VmState.BUILDING, TaskState.SPAWNING
    p.records.trail.clear()

    await p.builder.build(dataclasses.replace(task, attempts=1))

    assert inst.claim == claim and p.scheduler.host_state().used_vcpus == 1
    assert [t for _, t in p.records.trail][0] == TaskState.NETWORKING
    assert inst.vm_state == VmState.ACTIVE
    assert await driver.state(inst.id) == DomainState.RUNNING
    assert await disks.virtual_size(root, "qcow2") == 2 * GiB  # made anew


async def test_an_image_larger_than_the_flavor_disk_is_refused_before_any_domain(
        driver, tmp_path):
    p = Pipeline(driver, tmp_path)
    inst, task = p.admitted(driver)
    inst.flavor = dataclasses.replace(FLAVOR, disk=0)  # 0: the image's own size is fine
    await p.builder.build(task)
    assert await disks.virtual_size(disks.instance_dir(tmp_path, inst.id) / "disk",
                                    "qcow2") == GiB

    tiny = dataclasses.replace(FLAVOR, id="t", disk=1)
    q = Pipeline(driver, tmp_path / "q")
    big = BootImage(path=p.images.base, disk_format="qcow2", virtual_size=2 * GiB)  # type: ignore[union-attr]
    with pytest.raises(BadRequest, match="Flavor's disk is too small"):
        await q.builder.make_root(tmp_path / "root", big, tiny.disk)
    assert not (tmp_path / "root").exists()


async def test_booting_an_image_without_an_image_service_is_a_bad_request(driver, tmp_path):
    p = Pipeline(driver, tmp_path, images=False)
    inst, task = p.admitted(driver)
    with pytest.raises(BadRequest, match="No image service"):
        await p.builder.build(task)
    with pytest.raises(NotFound):
        await driver.state(inst.id)


async def test_a_boot_volume_is_recorded_before_its_copy_and_made_once(driver, tmp_path):
    p = Pipeline(driver, tmp_path)
    inst, task = p.admitted(driver, image_id="")
    task.params["boot_volume"] = {"image_id": "img", "size": 1,
                                  "delete_on_termination": True}

    await p.builder.build(task)

    assert p.volumes.made == ["vol-0"] and inst.root_volume_id == "vol-0"
    assert p.volumes.attached == {"vol-0": (inst.id, "/dev/vda")}
    [att] = inst.volume_attachments
    assert (att.boot, att.device, att.delete_on_termination) == (True, "/dev/vda", True)
    assert not (disks.instance_dir(tmp_path, inst.id) / "disk").exists()  # no local root
    spec = p.builder.domain_spec(inst)
    assert [(s.target, s.path) for s in spec.disks] == [("vda", str(tmp_path / "vol-0"))]
    assert inst.vm_state == VmState.ACTIVE
    # a claim without local disk: a volume-backed root takes none
    assert inst.claim is not None and inst.claim.disk_gb == 0

    # re-driven after a crash: the same volume, not another
    inst.vm_state, inst.task_state = VmState.BUILDING, TaskState.SPAWNING
    await p.builder.build(dataclasses.replace(task, attempts=1))
    assert p.volumes.made == ["vol-0"] and len(inst.volume_attachments) == 1


async def test_the_root_disk_is_made_while_the_claim_is_decided(driver, tmp_path):
    """Neither needs the other: a claim that waits for the root disk (made meanwhile)
    still ends ACTIVE."""
    import asyncio

    p = Pipeline(driver, tmp_path)
    inst, task = p.admitted(driver)
    root = disks.instance_dir(tmp_path, inst.id) / "disk"
    decide = p.builder.claim

    async def claim_once_the_disk_is_made(spec, persist):
        async with asyncio.timeout(10):
            while not root.exists():
                await asyncio.sleep(0.005)
        return await decide(spec, persist)

    p.builder.claim = claim_once_the_disk_is_made
    await p.builder.build(task)
    assert inst.vm_state == VmState.ACTIVE
    assert await disks.virtual_size(root, "qcow2") == 2 * GiB


async def test_a_refused_claim_waits_for_the_root_disk_and_cleanup_removes_it(
        driver, tmp_path):
    """The claim fails while the root disk is being made: the build's failure comes once
    nothing of the disk is still being written, so the cleanup after it removes all."""
    import asyncio

    from appliance.errors import NoValidHost

    p = Pipeline(driver, tmp_path)
    inst, task = p.admitted(driver)
    d = disks.instance_dir(tmp_path, inst.id)

    async def refuse_once_the_disk_is_begun(spec, persist):
        async with asyncio.timeout(10):
            while not d.exists():
                await asyncio.sleep(0.001)
        raise NoValidHost("No valid host was found. RamFilter: too much")

    p.builder.claim = refuse_once_the_disk_is_begun
    with pytest.raises(NoValidHost):
        await p.builder.build(task)
    assert not [t for t in asyncio.all_tasks()
                if getattr(t.get_coro(), "__name__", "") == "_make_fresh_root"]
    with pytest.raises(NotFound):
        await driver.state(inst.id)
    await p.builder.cleanup_resources(inst, keep_record=True)
    assert not d.exists()
