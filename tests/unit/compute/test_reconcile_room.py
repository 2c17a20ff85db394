"""Reconciliation (compute/reconcile.py) judged alone: the records made to agree with what
libvirt's test:///default driver has, over a real store and event bus, with small fakes of
the task queue (compute/progress.py's Conductor) and of the build pipeline's spawn and plug
(Spawner). No manager, no daemon."""
from __future__ import annotations

import asyncio
import uuid as uuidlib
from typing import Any

import pytest

from appliance.compute import orphans
from appliance.compute.driver import DomainSpec, DomainState
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.compute.power import POWER, SETTLE, SETTLEABLE, fault_of
from appliance.compute.reconcile import Reconciler
from appliance.compute.records import (
    FlavorSnapshot,
    Instance,
    PowerState,
    Task,
    TaskState,
    VmState,
)
from appliance.errors import HypervisorError, NotFound
from appliance.events import EventBus
from appliance.state import Repository, Store

SMALL = FlavorSnapshot(id="1", name="small", vcpus=1, ram=512, disk=1)
APPLIANCE = "a-" + uuidlib.uuid4().hex


class Queue:
    """The task queue as reconciliation drives it: saves go to the real repository; what
    was re-driven, taken over or failed is kept to be looked at."""

    def __init__(self, driver: LibvirtDriver, instances: Repository[Instance],
                 tasks: Repository[Task], store: Store) -> None:
        self.driver, self.instances, self.tasks, self.store = driver, instances, tasks, store
        self.running: set[str] = set()
        self.taken: set[str] = set()
        self.redriven: list[Task] = []
        self.failed: list[tuple[str, str]] = []

    def busy(self, instance_id: str) -> bool:
        return instance_id in self.running

    def take_over(self, instance_id: str) -> None:
        self.taken.add(instance_id)

    def redrive(self, task: Task) -> None:
        self.redriven.append(task)

    async def fail(self, task: Task, exc: BaseException) -> None:
        self.failed.append((task.instance_id, str(exc)))
        inst = self.instances.require(task.instance_id)
        inst.vm_state, inst.task_state, inst.fault = VmState.ERROR, None, fault_of(exc)
        await self.save(inst, self.tasks.delete_op(task.id), deleting=True)

    async def settle(self, inst: Instance) -> None:
        inst.task_state = None
        inst.power_state = await self.power_of(inst.id)
        if inst.vm_state in SETTLEABLE:
            inst.vm_state = SETTLE.get(inst.power_state, VmState.STOPPED)

    async def save(self, inst: Instance, *extra: Any, deleting: bool = False) -> None:
        await self.store.commit([self.instances.put_op(inst), *extra])

    async def power_of(self, instance_id: str, *, observed: bool = False) -> PowerState:
        try:
            return POWER[await self.driver.state(instance_id)]
        except NotFound:
            return PowerState.NOSTATE


class Guests:
    """spawn and plug over the real test driver; a spawn can be made to fail."""

    def __init__(self, driver: LibvirtDriver) -> None:
        self.driver = driver
        self.spawned: list[tuple[str, bool]] = []
        self.plugged: list[str] = []
        self.broken: str | None = None

    async def spawn(self, inst: Instance, *, rescue: bool = False) -> None:
        if self.broken:
            raise HypervisorError(self.broken)
        self.spawned.append((inst.id, rescue))
        await self.driver.spawn(spec_of(inst.id, ours=True))
        await self.plug(inst)

    async def plug(self, inst: Instance) -> None:
        self.plugged.append(inst.id)


def spec_of(uuid: str, *, ours: bool, appliance: str = APPLIANCE) -> DomainSpec:
    meta = {orphans.INSTANCE_KEY: uuid, orphans.APPLIANCE_KEY: appliance} if ours else {}
    return DomainSpec(uuid=uuid, name=f"ms-{uuid}", vcpus=1, memory_mib=64, disks=[],
                      nics=[], metadata=meta)


class Room:
    def __init__(self, reconciler: Reconciler, queue: Queue, guests: Guests,
                 instances: Repository[Instance], tasks: Repository[Task],
                 events: EventBus, driver: LibvirtDriver) -> None:
        self.reconciler, self.queue, self.guests = reconciler, queue, guests
        self.instances, self.tasks, self.events, self.driver = instances, tasks, events, driver
        self.made: list[str] = []

    async def domain(self, *, ours: bool = True, running: bool = True,
                     appliance: str = APPLIANCE) -> str:
        uuid = str(uuidlib.uuid4())
        self.made.append(uuid)
        await self.driver.spawn(spec_of(uuid, ours=ours, appliance=appliance))
        if not running:
            await self.driver.power_off(uuid, graceful=False)
        return uuid

    async def record(self, uuid: str | None = None, **kw: Any) -> Instance:
        inst = Instance(id=uuid or str(uuidlib.uuid4()), name="vm", project_id="p1",
                        user_id="u1", flavor=SMALL, **kw)
        self.made.append(inst.id)
        await self.instances.save(inst)
        return inst

    def kinds(self) -> list[str]:
        return [e.kind for e in sorted(self.events.repo.list(), key=lambda e: e.seq)]


async def make_room(tmp_path, *, resume: bool = True):
    driver = LibvirtDriver("test:///default")
    await driver.connect()
    store = Store(tmp_path / "state")
    await store.open()
    instances = Repository(store, "instances", Instance, kind="Instance")
    tasks = Repository(store, "compute_tasks", Task)
    events = EventBus(store)
    queue, guests = Queue(driver, instances, tasks, store), Guests(driver)
    reconciler = Reconciler(driver, instances, tasks, queue, guests, events, asyncio.Lock(),
                            resume_guests=resume, appliance_id=lambda: APPLIANCE)
    return Room(reconciler, queue, guests, instances, tasks, events, driver), store


@pytest.fixture
async def room(tmp_path):
    r, store = await make_room(tmp_path)
    try:
        yield r
    finally:
        await cleanup(r, store)


async def cleanup(r: Room, store: Store) -> None:
    for uuid in r.made:
        try:
            await r.driver.destroy(uuid)
        except NotFound:
            pass
    await r.driver.close()
    await store.close()


async def test_an_interrupted_build_is_re_driven_and_its_domain_kept(room):
    uuid = await room.domain()  # defined by the build before the daemon died
    inst = await room.record(uuid, vm_state=VmState.BUILDING, task_state=TaskState.SPAWNING)
    await room.tasks.save(Task(id=inst.id, instance_id=inst.id, action="build"))

    await room.reconciler.reconcile()

    assert [(t.instance_id, t.attempts) for t in room.queue.redriven] == [(inst.id, 1)]
    assert room.tasks.require(inst.id).attempts == 1  # durable before it runs again
    assert await room.driver.state(uuid) == DomainState.RUNNING  # not swept as an orphan
    assert uuid not in room.reconciler.orphans  # nor reported: it has its server
    assert "compute.orphan_removed" not in room.kinds()
    assert room.queue.taken == set()


async def test_a_build_interrupted_a_fourth_time_fails_instead(room):
    inst = await room.record(vm_state=VmState.BUILDING, task_state=TaskState.SPAWNING)
    await room.tasks.save(Task(id=inst.id, instance_id=inst.id, action="build", attempts=3))

    await room.reconciler.reconcile()

    assert room.queue.redriven == []
    assert room.queue.failed == [(inst.id, "build interrupted 4 times; giving up")]
    assert room.instances.require(inst.id).vm_state == VmState.ERROR
    assert room.tasks.get(inst.id) is None


async def test_an_interrupted_delete_takes_the_instance_over_and_runs_again(room):
    inst = await room.record(vm_state=VmState.ACTIVE, task_state=TaskState.DELETING)
    await room.tasks.save(Task(id=inst.id, instance_id=inst.id, action="delete"))

    await room.reconciler.reconcile()

    assert room.queue.taken == {inst.id}
    assert [t.action for t in room.queue.redriven] == ["delete"]


async def test_a_vanished_domain_is_spawned_again_for_an_active_instance(room):
    inst = await room.record(vm_state=VmState.ACTIVE, task_state=None,
                             power_state=PowerState.RUNNING)

    await room.reconciler.reconcile()

    assert room.guests.spawned == [(inst.id, False)] and room.guests.plugged == [inst.id]
    stored = room.instances.require(inst.id)
    assert (stored.vm_state, stored.power_state) == (VmState.ACTIVE, PowerState.RUNNING)
    assert await room.driver.state(inst.id) == DomainState.RUNNING


async def test_a_vanished_domain_that_cannot_run_again_leaves_the_instance_in_error(room):
    inst = await room.record(vm_state=VmState.RESCUED, task_state=None,
                             power_state=PowerState.RUNNING)
    room.guests.broken = "the disk is gone"

    await room.reconciler.reconcile()

    stored = room.instances.require(inst.id)
    assert (stored.vm_state, stored.power_state) == (VmState.ERROR, PowerState.NOSTATE)
    assert stored.fault is not None and "the disk is gone" in stored.fault.message


async def test_without_resume_a_vanished_domain_leaves_the_instance_shut_off(tmp_path):
    r, store = await make_room(tmp_path, resume=False)
    try:
        active = await r.record(vm_state=VmState.ACTIVE, task_state=None,
                                power_state=PowerState.RUNNING)
        broken = await r.record(vm_state=VmState.ERROR, task_state=None,
                                power_state=PowerState.RUNNING)

        await r.reconciler.reconcile()

        stored = r.instances.require(active.id)
        assert (stored.vm_state, stored.power_state) == (VmState.STOPPED, PowerState.NOSTATE)
        assert stored.status == "SHUTOFF" and r.guests.spawned == []
        # an ERROR instance keeps what it says
        assert r.instances.require(broken.id).power_state == PowerState.RUNNING
    finally:
        await cleanup(r, store)


async def test_a_guest_the_host_reboot_shut_off_is_started_and_plugged_again(room):
    uuid = await room.domain(running=False)
    await room.record(uuid, vm_state=VmState.ACTIVE, task_state=None,
                      power_state=PowerState.RUNNING)

    await room.reconciler.reconcile()

    assert await room.driver.state(uuid) == DomainState.RUNNING
    assert room.guests.plugged == [uuid] and room.guests.spawned == []
    assert room.instances.require(uuid).vm_state == VmState.ACTIVE


async def test_a_guest_started_behind_our_back_is_seen_running_and_plugged(room):
    uuid = await room.domain()
    await room.record(uuid, vm_state=VmState.STOPPED, task_state=None,
                      power_state=PowerState.SHUTDOWN)

    await room.reconciler.reconcile()

    stored = room.instances.require(uuid)
    assert (stored.vm_state, stored.power_state) == (VmState.ACTIVE, PowerState.RUNNING)
    assert room.guests.plugged == [uuid]


async def test_an_interrupted_action_settles_to_the_power_state_with_a_fault(room):
    uuid = await room.domain(running=False)
    inst = await room.record(uuid, vm_state=VmState.ACTIVE, task_state=TaskState.REBOOTING)
    await room.tasks.save(Task(id=inst.id, instance_id=inst.id, action="reboot"))

    await room.reconciler.reconcile()

    stored = room.instances.require(uuid)
    assert (stored.vm_state, stored.task_state) == (VmState.STOPPED, None)
    assert stored.power_state == PowerState.SHUTDOWN
    assert stored.fault is not None and "rebooting was interrupted" in stored.fault.message
    assert room.tasks.get(uuid) is None and room.queue.redriven == []


async def test_a_resize_interrupted_without_a_domain_ends_in_error(room):
    inst = await room.record(vm_state=VmState.ACTIVE, task_state=TaskState.RESIZE_MIGRATING)
    await room.tasks.save(Task(id=inst.id, instance_id=inst.id, action="resize"))

    await room.reconciler.reconcile()

    assert room.instances.require(inst.id).vm_state == VmState.ERROR


async def test_our_domain_without_a_server_is_removed_and_foreign_ones_left(room):
    ours = await room.domain()
    foreign = await room.domain(ours=False)
    other_appliance = await room.domain(appliance="someone-else")
    gone_task = Task(id="gone", instance_id="gone", action="stop")
    await room.tasks.save(gone_task)

    await room.reconciler.reconcile()

    with pytest.raises(NotFound):
        await room.driver.state(ours)
    assert await room.driver.state(foreign) == DomainState.RUNNING
    assert await room.driver.state(other_appliance) == DomainState.RUNNING
    assert {foreign, other_appliance} <= set(room.reconciler.orphans)
    assert ours not in room.reconciler.orphans
    kinds = room.kinds()
    assert kinds.count("compute.orphan_removed") == 1
    assert kinds.count("compute.orphan") == len(room.reconciler.orphans)
    assert room.tasks.get("gone") is None  # a task of a vanished instance is dropped


async def test_the_periodic_sweep_removes_only_ours(room):
    ours = await room.domain()
    foreign = await room.domain(ours=False)
    await room.record(await room.domain())  # a server's own domain stays

    assert await room.reconciler.sweep_orphans() == 1

    with pytest.raises(NotFound):
        await room.driver.state(ours)
    assert await room.driver.state(foreign) == DomainState.RUNNING


async def test_power_sync_follows_the_hypervisor_but_not_busy_or_error_instances(room):
    idle, busy, broken = [await room.domain(running=False) for _ in range(3)]
    for uuid in (idle, busy):
        await room.record(uuid, vm_state=VmState.ACTIVE, task_state=None,
                          power_state=PowerState.RUNNING)
    await room.record(broken, vm_state=VmState.ERROR, task_state=None,
                      power_state=PowerState.RUNNING)
    room.queue.running.add(busy)

    await room.reconciler.sync_power_states()

    assert room.instances.require(idle).status == "SHUTOFF"
    assert room.instances.require(busy).status == "ACTIVE"
    assert room.instances.require(broken).power_state == PowerState.RUNNING


async def test_a_lifecycle_event_brings_a_shutdown_in(room):
    uuid = await room.domain()
    await room.record(uuid, vm_state=VmState.ACTIVE, task_state=None,
                      power_state=PowerState.RUNNING)
    stopped = asyncio.Event()
    room.instances.store.watch("instances", lambda id, old, new: stopped.set()
                               if id == uuid and new["vm_state"] == "stopped" else None)
    watcher = asyncio.create_task(room.reconciler.watch_events())
    try:
        await asyncio.sleep(0)  # the watcher subscribes before the guest goes down
        await room.driver.power_off(uuid, graceful=False)
        async with asyncio.timeout(5):
            await stopped.wait()
        assert room.instances.require(uuid).power_state == PowerState.SHUTDOWN
    finally:
        watcher.cancel()
