"""The rooms holding compute's action handlers, each judged alone: built with only what it
uses — libvirt's test:///default driver, a real scheduler and real qcow2 files under
tmp_path — and small fakes of compute/progress.py's Progress and Guests and of the volume
seam. No manager, no store, no daemon."""
from __future__ import annotations

import dataclasses
import uuid as uuidlib
from pathlib import Path
from typing import Any

import pytest

from appliance.compute import disks
from appliance.compute.driver import DiskSpec, DomainSpec, DomainState
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.compute.records import (
    FlavorSnapshot,
    Instance,
    PowerState,
    Task,
    TaskState,
    VmState,
)
from appliance.compute.rescue import RESCUE_DISK, Rescues
from appliance.compute.resize import BACKUP, Resizes, check_resize, resize_params
from appliance.compute.scheduler import Scheduler
from appliance.compute.volume_attach import VolumeAttachments
from appliance.errors import BadRequest, Conflict, NoValidHost, NotFound, ServiceUnavailable
from appliance.seams import AttachableVolume, BootImage
from tests.unit.compute.fakes import Records, scheduler_of

GiB = 1 << 30
SMALL = FlavorSnapshot(id="1", name="small", vcpus=1, ram=512, disk=1)
LARGE = FlavorSnapshot(id="2", name="large", vcpus=2, ram=1024, disk=2)


class Guests:
    """The build pipeline's respawn over the real test driver: a domain defined from the
    record's flavor, a rescue disk first when rescuing, left running or off as asked."""

    def __init__(self, driver: LibvirtDriver, instances_dir: Path) -> None:
        self.driver, self.instances_dir = driver, instances_dir
        self.respawns: list[dict[str, bool]] = []

    async def boot_image(self, image_id: str, project_id: str) -> BootImage:
        if image_id != "img":
            raise NotFound(f"Image {image_id} could not be found.")
        base = self.instances_dir / "base.qcow2"
        if not base.exists():
            await disks.create_blank(base, GiB)
        return BootImage(path=base, disk_format="qcow2", virtual_size=GiB)

    async def make_root(self, root: Path, boot: BootImage, flavor_disk_gb: int) -> None:
        await disks.create_overlay(root, boot.path, boot.disk_format,
                                   max(flavor_disk_gb * GiB, boot.virtual_size))

    async def respawn(self, inst: Instance, *, running: bool, rescue: bool = False) -> None:
        self.respawns.append({"running": running, "rescue": rescue})
        d = disks.instance_dir(self.instances_dir, inst.id)
        targets = [DiskSpec(str(d / RESCUE_DISK), target="vda")] if rescue else []
        targets.append(DiskSpec(str(d / "disk"), target="vdb" if rescue else "vda"))
        try:
            await self.driver.destroy(inst.id)
        except NotFound:
            pass
        await self.driver.spawn(DomainSpec(
            uuid=inst.id, name=f"ms-{inst.id}", vcpus=inst.flavor.vcpus,
            memory_mib=inst.flavor.ram, disks=targets, nics=[], metadata={}))
        if not running:
            await self.driver.power_off(inst.id, graceful=False)


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
            try:
                await d.destroy(u)
            except NotFound:
                pass
        await d.close()


async def running_instance(driver: LibvirtDriver, guests: Guests, records: Records,
                           flavor: FlavorSnapshot, **kw: Any) -> Instance:
    inst = Instance(id=str(uuidlib.uuid4()), name="vm", project_id="p1", user_id="u1",
                    flavor=flavor, image_id="img", vm_state=VmState.ACTIVE,
                    task_state=None, **kw)
    driver.made.append(inst.id)  # type: ignore[attr-defined]
    d = disks.make_instance_dir(guests.instances_dir, inst.id)
    await guests.make_root(d / "disk", await guests.boot_image("img", "p1"),
                           flavor.disk)
    await guests.respawn(inst, running=True)
    guests.respawns.clear()
    inst.power_state = await records.power_of(inst.id)
    return records.put(inst)


def task(inst: Instance, action: str, **params: Any) -> Task:
    return Task(id=inst.id, instance_id=inst.id, action=action, params=params)


# -- resize ---------------------------------------------------------------------------------

@pytest.fixture
def resize_room(driver, tmp_path):
    scheduler = scheduler_of(tmp_path)
    records, guests = Records(driver, scheduler), Guests(driver, tmp_path)
    room = Resizes(records, driver, guests, scheduler.claim, tmp_path, shutdown_timeout=1.0)
    return room, records, guests, scheduler


async def take_claim(scheduler: Scheduler, inst: Instance) -> None:
    from appliance.compute.scheduler import RequestSpec

    async def persist(claim):
        inst.claim = claim
    await scheduler.claim(RequestSpec.for_flavor(inst.id, inst.flavor), persist)
    scheduler.sync(inst)


async def test_resize_claims_the_new_flavor_beside_the_old_and_grows_a_backed_up_disk(
        driver, resize_room, tmp_path):
    room, records, guests, scheduler = resize_room
    inst = await running_instance(driver, guests, records, SMALL)
    await take_claim(scheduler, inst)
    root = disks.instance_dir(tmp_path, inst.id) / "disk"

    await room.resize(task(inst, "resize", **resize_params(LARGE)))

    assert inst.flavor == LARGE and inst.old_flavor == SMALL
    assert inst.claim.vcpus == 2 and inst.old_claim.vcpus == 1
    # both claims count until the user confirms or reverts
    assert scheduler.host_state().used_vcpus == 3
    assert [t for _, t in records.trail] == [TaskState.RESIZE_MIGRATING,
                                             TaskState.RESIZE_FINISH, None]
    assert (inst.vm_state, inst.power_state) == (VmState.RESIZED, PowerState.RUNNING)
    assert inst.status == "VERIFY_RESIZE" and inst.resume_running
    assert guests.respawns == [{"running": True, "rescue": False}]
    assert await disks.virtual_size(root, "qcow2") == 2 * GiB
    assert await disks.virtual_size(root.with_name(BACKUP), "qcow2") == GiB
    assert await driver.state(inst.id) == DomainState.RUNNING
    # progress: from the copy's start, through its bytes, to past the copy; never backwards
    assert records.percents[0] == 10 and 70 in records.percents
    assert records.percents[-1] == 75 and records.percents == sorted(records.percents)


async def test_revert_gives_back_the_old_flavor_claim_and_disk(driver, resize_room, tmp_path):
    room, records, guests, scheduler = resize_room
    inst = await running_instance(driver, guests, records, SMALL)
    await take_claim(scheduler, inst)
    old_claim = inst.claim
    await room.resize(task(inst, "resize", **resize_params(LARGE)))

    await room.revert(task(inst, "revert_resize"))

    root = disks.instance_dir(tmp_path, inst.id) / "disk"
    assert inst.flavor == SMALL and inst.old_flavor is None
    assert inst.claim == old_claim and inst.old_claim is None
    assert scheduler.host_state().used_vcpus == 1
    assert await disks.virtual_size(root, "qcow2") == GiB
    assert not root.with_name(BACKUP).exists()
    assert (inst.vm_state, inst.task_state) == (VmState.ACTIVE, None)
    assert guests.respawns[-1] == {"running": True, "rescue": False}


async def test_confirm_drops_the_old_claim_and_the_backup(driver, resize_room, tmp_path):
    room, records, guests, scheduler = resize_room
    inst = await running_instance(driver, guests, records, SMALL)
    await take_claim(scheduler, inst)
    await room.resize(task(inst, "resize", **resize_params(LARGE)))

    await room.confirm(task(inst, "confirm_resize"))

    assert inst.flavor == LARGE and inst.old_flavor is None and inst.old_claim is None
    assert scheduler.host_state().used_vcpus == 2
    assert not (disks.instance_dir(tmp_path, inst.id) / BACKUP).exists()
    assert (inst.vm_state, inst.task_state) == (VmState.ACTIVE, None)


async def test_a_stopped_instance_stays_off_through_resize_and_revert(driver, resize_room):
    room, records, guests, scheduler = resize_room
    inst = await running_instance(driver, guests, records, SMALL)
    await driver.power_off(inst.id, graceful=False)
    inst.vm_state = VmState.STOPPED
    await take_claim(scheduler, inst)

    await room.resize(task(inst, "resize", **resize_params(LARGE)))
    assert guests.respawns == [{"running": False, "rescue": False}]
    assert (inst.vm_state, inst.power_state) == (VmState.RESIZED, PowerState.SHUTDOWN)

    await room.revert(task(inst, "revert_resize"))
    assert (inst.vm_state, inst.power_state) == (VmState.STOPPED, PowerState.SHUTDOWN)


async def test_a_flavor_the_host_cannot_hold_changes_nothing(driver, resize_room, tmp_path):
    room, records, guests, scheduler = resize_room
    inst = await running_instance(driver, guests, records, SMALL)
    await take_claim(scheduler, inst)
    huge = dataclasses.replace(LARGE, id="3", vcpus=64)

    with pytest.raises(NoValidHost):
        await room.resize(task(inst, "resize", **resize_params(huge)))

    assert inst.flavor == SMALL and inst.old_flavor is None and inst.old_claim is None
    assert records.trail == [] and scheduler.host_state().used_vcpus == 1
    assert not (disks.instance_dir(tmp_path, inst.id) / BACKUP).exists()
    assert await driver.state(inst.id) == DomainState.RUNNING


def test_resize_admission_refuses_a_smaller_disk_and_the_same_flavor():
    inst = Instance(id="i", name="vm", project_id="p", user_id="u", flavor=LARGE)
    with pytest.raises(BadRequest, match="smaller disk"):
        check_resize(inst, dataclasses.replace(SMALL, id="9"))
    with pytest.raises(BadRequest, match="must change flavor"):
        check_resize(inst, LARGE)
    check_resize(inst, dataclasses.replace(LARGE, id="9", disk=0))  # 0: the image's size
    inst.root_volume_id = "v"  # a volume-backed root has no local disk to shrink
    check_resize(inst, dataclasses.replace(SMALL, id="9"))


# -- rescue ---------------------------------------------------------------------------------

@pytest.fixture
def rescue_room(driver, tmp_path):
    records, guests = Records(driver), Guests(driver, tmp_path)
    return Rescues(records, driver, guests, tmp_path, shutdown_timeout=1.0), records, guests


async def test_rescue_boots_a_rescue_disk_first_then_unrescue_removes_it(
        driver, rescue_room, tmp_path):
    room, records, guests = rescue_room
    inst = await running_instance(driver, guests, records, SMALL)
    rescue_disk = disks.instance_dir(tmp_path, inst.id) / RESCUE_DISK

    await room.rescue(task(inst, "rescue", image_id=None))  # the instance's own image

    assert (inst.vm_state, inst.task_state, inst.status) == (VmState.RESCUED, None, "RESCUE")
    assert inst.power_state == PowerState.RUNNING and inst.resume_running
    assert guests.respawns == [{"running": True, "rescue": True}]
    assert await disks.virtual_size(rescue_disk, "qcow2") == GiB

    await room.unrescue(task(inst, "unrescue"))

    assert (inst.vm_state, inst.task_state, inst.status) == (VmState.ACTIVE, None, "ACTIVE")
    assert guests.respawns[-1] == {"running": True, "rescue": False}
    assert not rescue_disk.exists()
    assert records.finished == ["rescue", "unrescue"]


async def test_rescue_of_a_stopped_instance_runs_it_and_remembers_it_was_off(
        driver, rescue_room):
    room, records, guests = rescue_room
    inst = await running_instance(driver, guests, records, SMALL)
    await driver.power_off(inst.id, graceful=False)
    inst.vm_state = VmState.STOPPED

    await room.rescue(task(inst, "rescue", image_id="img"))

    assert inst.vm_state == VmState.RESCUED and not inst.resume_running
    assert await driver.state(inst.id) == DomainState.RUNNING


async def test_a_volume_backed_instance_needs_a_rescue_image_named(driver, rescue_room):
    room, records, guests = rescue_room
    inst = records.put(Instance(id=str(uuidlib.uuid4()), name="vm", project_id="p1",
                                user_id="u1", flavor=SMALL, root_volume_id="v1",
                                vm_state=VmState.ACTIVE, task_state=TaskState.RESCUING))
    with pytest.raises(BadRequest, match="rescue image"):
        await room.rescue(task(inst, "rescue", image_id=None))
    assert records.trail == [] and guests.respawns == []
    with pytest.raises(NotFound):  # a named image must exist
        await room.rescue(task(inst, "rescue", image_id="gone"))


# -- volume attachments ---------------------------------------------------------------------

class Volumes:
    """The volume service's bookkeeping as compute drives it: state per volume."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state: dict[str, str] = {"v1": "available", "v2": "available",
                                      "v3": "available"}
        self.attached_as: dict[str, tuple[str, str]] = {}

    async def volume_for_attach(self, volume_id: str, project_id: str) -> AttachableVolume:
        if volume_id not in self.state:
            raise NotFound(f"Volume {volume_id} could not be found.")
        if self.state[volume_id] != "available":
            raise Conflict(f"Volume {volume_id} is {self.state[volume_id]}")
        self.state[volume_id] = "attaching"
        return AttachableVolume(path=self.tmp / volume_id, format="raw", size_gb=1)

    async def mark_attached(self, volume_id: str, instance_id: str, device: str) -> None:
        assert self.state[volume_id] == "attaching"
        self.state[volume_id] = "in-use"
        self.attached_as[volume_id] = (instance_id, device)

    async def mark_detached(self, volume_id: str, instance_id: str | None = None) -> None:
        self.state[volume_id] = "available"
        self.attached_as.pop(volume_id, None)


class NoDomains:
    """A hypervisor without the instance's domain (a stopped guest after a host reboot):
    every verb on it is NotFound, as libvirt answers; detaches are counted."""

    def __init__(self) -> None:
        self.detaches: list[tuple[str, str]] = []

    async def state(self, uuid: str) -> DomainState:
        raise NotFound(f"domain {uuid} not found")

    async def attach_disk(self, uuid: str, disk: DiskSpec) -> None:
        raise AssertionError("no domain: the disk joins at the next spawn, from the record")

    async def detach_disk(self, uuid: str, target: str) -> None:
        self.detaches.append((uuid, target))
        raise NotFound(f"domain {uuid} not found")


@pytest.fixture
def attach_room(tmp_path):
    hypervisor = NoDomains()
    records, volumes = Records(hypervisor), Volumes(tmp_path)  # type: ignore[arg-type]
    room = VolumeAttachments(records, hypervisor, volumes)  # type: ignore[arg-type]
    return room, records, volumes, hypervisor


def stopped_record(records: Records) -> Instance:
    """An instance without a domain: attachments are recorded for its next spawn."""
    return records.put(Instance(id=str(uuidlib.uuid4()), name="vm", project_id="p1",
                                user_id="u1", flavor=SMALL, vm_state=VmState.STOPPED,
                                task_state=TaskState.BLOCK_DEVICE_MAPPING))


async def test_attachments_take_the_next_free_device_and_free_it_on_detach(attach_room):
    room, records, volumes, hypervisor = attach_room
    inst = stopped_record(records)

    first = await room.attach(task(inst, "attach_volume", volume_id="v1"))
    second = await room.attach(task(inst, "attach_volume", volume_id="v2"))

    assert (first.device, second.device) == ("/dev/vdb", "/dev/vdc")
    assert volumes.attached_as == {"v1": (inst.id, "/dev/vdb"), "v2": (inst.id, "/dev/vdc")}
    assert [a.volume_id for a in inst.volume_attachments] == ["v1", "v2"]
    assert inst.volume_attachments[0].path == str(volumes.tmp / "v1")
    assert (inst.vm_state, inst.task_state) == (VmState.STOPPED, None)

    await room.detach(task(inst, "detach_volume", volume_id="v1"))
    assert hypervisor.detaches == [(inst.id, "vdb")]
    assert volumes.state["v1"] == "available" and "v1" not in volumes.attached_as
    assert [a.volume_id for a in inst.volume_attachments] == ["v2"]

    third = await room.attach(task(inst, "attach_volume", volume_id="v3"))
    assert third.device == "/dev/vdb"  # the freed target is taken again


async def test_the_same_volume_twice_is_a_conflict_and_changes_nothing(attach_room):
    room, records, volumes, _ = attach_room
    inst = stopped_record(records)
    await room.attach(task(inst, "attach_volume", volume_id="v1"))
    with pytest.raises(Conflict):
        await room.attach(task(inst, "attach_volume", volume_id="v1"))
    assert len(inst.volume_attachments) == 1 and volumes.state["v1"] == "in-use"


async def test_a_refused_hot_plug_gives_the_volume_back(driver, tmp_path):
    """libvirt's test driver cannot hot-plug disks: the refusal must leave the volume
    available and the instance without the attachment."""
    records, volumes = Records(driver), Volumes(tmp_path)
    room = VolumeAttachments(records, driver, volumes)
    inst = await running_instance(driver, Guests(driver, tmp_path), records, SMALL)

    with pytest.raises(ServiceUnavailable):
        await room.attach(task(inst, "attach_volume", volume_id="v1"))

    assert volumes.state["v1"] == "available" and volumes.attached_as == {}
    assert inst.volume_attachments == [] and records.finished == []
