"""Reconciliation: the instance records made to agree with the hypervisor.

At start, after a crash or a host reboot: interrupted builds and deletes are re-driven (both
are idempotent) and other interrupted actions settled to the power state libvirt reports;
instances that were running are started again (unless `[compute] resume_guests_on_start =
false`), their taps plugged anew. It runs in the background — the API answers meanwhile, and
admission waits for it (the manager holds the admission lock around it). Domains this appliance
defined whose server is gone are removed (then swept periodically); other domains are
reported as orphans, never destroyed or adopted. While running: lifecycle events (a guest shut
down from inside, a crash) and a periodic sync, the backstop for a lost event, bring power
states in.

It is built with only what it uses: the driver, the instance and task repositories, the event
bus, the admission lock it shares with the task queue, the build pipeline's `spawn` and `plug`
(`Spawner`) and the manager's task queue and record saves (`Conductor`, compute/progress.py),
so it can be unit-tested alone. When it runs (after the hypervisor is reached, in the
background) is the manager's business.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from appliance.compute import orphans
from appliance.compute.driver import ComputeDriver, LifecycleEventKind
from appliance.compute.power import SETTLE, SETTLEABLE, fault_of
from appliance.compute.progress import Conductor, Spawner
from appliance.compute.records import Fault, Instance, PowerState, Task, TaskState, VmState, now
from appliance.errors import HypervisorError, MonostackError, NotFound, ServiceUnavailable
from appliance.events import EventBus
from appliance.state import Repository

log = logging.getLogger("monostack.compute")

POWER_SYNC_INTERVAL = 30.0
#: seconds between sweeps for domains of ours whose server is gone
ORPHAN_SWEEP_INTERVAL = 30.0


class Reconciler:
    def __init__(self, driver: ComputeDriver, instances: Repository[Instance],
                 tasks: Repository[Task], conductor: Conductor, guests: Spawner,
                 events: EventBus, admit_lock: asyncio.Lock, *, resume_guests: bool,
                 appliance_id: Callable[[], str]) -> None:
        """admit_lock: the task queue's admission lock (an event or a sync must not act on
        a record an action is being admitted for); appliance_id: this appliance's id, read
        from the store when the manager starts (compute/orphans.py)."""
        self.driver, self.instances, self.tasks = driver, instances, tasks
        self.conductor, self.guests, self.events = conductor, guests, events
        self.admit_lock = admit_lock
        self.resume_guests = resume_guests
        self.appliance_id = appliance_id
        #: domains libvirt has that are not this appliance's (found by the last reconcile)
        self.orphans: list[str] = []

    async def reconcile(self) -> None:
        """After a restart: finish or fail interrupted work, report orphans, re-read power."""
        domains = {d.uuid.lower(): d for d in await self.driver.list_domains()}
        pending = {t.instance_id: t for t in self.tasks.list()}
        for inst in self.instances.list():
            task = pending.pop(inst.id, None)
            if task is not None and task.action in ("build", "delete"):
                log.info("re-driving interrupted %s", task.action, extra={"instance": inst.id})
                task.attempts += 1
                if task.action == "delete":
                    self.conductor.take_over(inst.id)
                if task.attempts > 3:
                    await self.conductor.fail(task, HypervisorError(
                        f"{task.action} interrupted {task.attempts} times; giving up"))
                    continue
                await self.tasks.save(task)
                self.conductor.redrive(task)
                continue
            if task is not None or inst.task_state is not None:
                await self._settle_interrupted(inst, task)
                continue
            await self._resync_power(inst, inst.id in domains)
        for task in pending.values():  # tasks of vanished instances
            await self.tasks.delete(task.id)
        found = orphans.classify(domains.values(), {i.id.lower() for i in self.instances.list()},
                                 self.appliance_id())
        await self._remove_orphans(found.ours)
        self.orphans = []
        for dom in found.foreign:
            uuid = dom.uuid.lower()
            self.orphans.append(uuid)
            log.warning("orphan domain %s (%s) is not in our state; left untouched",
                        dom.name, uuid, extra={"domain": uuid})
            await self.events.publish(
                "compute.orphan", "domain", uuid, None,
                f"libvirt domain {dom.name} ({uuid}) is not known to monostack; "
                "left as it is (neither adopted nor destroyed)", name=dom.name, ours=False)

    async def sweep_orphans(self) -> int:
        """Remove domains this appliance defined whose server is gone; how many."""
        domains = await self.driver.list_domains()
        found = orphans.classify(domains, {i.id.lower() for i in self.instances.list()},
                                 self.appliance_id())
        return await self._remove_orphans(found.ours)

    async def _remove_orphans(self, doms: list[Any]) -> int:
        removed = 0
        for dom in doms:
            uuid = dom.uuid.lower()
            if self.instances.get(uuid) is not None:  # a re-driven build: not an orphan
                continue
            with contextlib.suppress(NotFound):  # server ids are never reused: no lock needed
                await self.driver.destroy(uuid)
            removed += 1
            log.warning("removed domain %s (%s): its server is gone", dom.name, uuid,
                        extra={"domain": uuid})
            await self.events.publish(
                "compute.orphan_removed", "domain", uuid, dom.metadata.get("project-id"),
                f"libvirt domain {dom.name} ({uuid}) outlived its server; removed",
                name=dom.name)
        return removed

    async def sweep_orphans_forever(self, reconciled: asyncio.Event) -> None:
        """Every ORPHAN_SWEEP_INTERVAL once `reconciled` (the start-up reconciliation sweeps
        first): a define can land after its server is gone."""
        await reconciled.wait()
        while True:
            await asyncio.sleep(ORPHAN_SWEEP_INTERVAL)
            try:
                await self.sweep_orphans()
            except asyncio.CancelledError:
                raise
            except ServiceUnavailable as exc:
                log.warning("orphan sweep skipped: %s", exc)
            except Exception:
                log.exception("orphan sweep failed")

    async def _settle_interrupted(self, inst: Instance, task: Task | None) -> None:
        was = inst.task_state
        await self.conductor.settle(inst)
        if inst.vm_state == VmState.RESIZED or was in (TaskState.RESIZE_PREP,
                                                       TaskState.RESIZE_MIGRATING,
                                                       TaskState.RESIZE_FINISH):
            if await self.conductor.power_of(inst.id) == PowerState.NOSTATE and was is not None:
                inst.vm_state = VmState.ERROR
        if was is not None:
            inst.fault = Fault(code=500, message=f"{was} was interrupted by a daemon restart",
                               details="", created=now())
        ops = [self.tasks.delete_op(task.id)] if task is not None else []
        await self.conductor.save(inst, *ops, deleting=True)

    async def _resync_power(self, inst: Instance, has_domain: bool) -> None:
        if inst.vm_state in (VmState.ERROR, VmState.BUILDING, VmState.DELETED):
            return
        if not has_domain:
            if self.resume_guests and inst.vm_state in (VmState.ACTIVE,
                                                                          VmState.RESCUED):
                try:
                    await self.guests.spawn(inst, rescue=inst.vm_state == VmState.RESCUED)
                    inst.power_state = await self.conductor.power_of(inst.id)
                except Exception as exc:  # the instance cannot run any more: say so
                    inst.vm_state, inst.fault = VmState.ERROR, fault_of(exc)
                    inst.power_state = PowerState.NOSTATE
            else:
                inst.power_state = PowerState.NOSTATE
                if inst.vm_state in SETTLEABLE:
                    inst.vm_state = VmState.STOPPED
            await self.conductor.save(inst, deleting=True)
            return
        power = await self.conductor.power_of(inst.id)
        # After a host reboot the domains of running instances are shut off (or, when
        # libvirt-guests saved them on the way down, shut off with a managed-save image, which
        # power_on restores). Their taps are new, in the root namespace: plug them.
        if (power in (PowerState.SHUTDOWN, PowerState.CRASHED, PowerState.SUSPENDED)
                and inst.vm_state in (VmState.ACTIVE, VmState.RESCUED)
                and self.resume_guests):
            try:
                await self.driver.power_on(inst.id)
                await self.guests.plug(inst)
            except MonostackError as exc:
                log.warning("cannot resume %s after a restart: %s", inst.id, exc,
                            extra={"instance": inst.id})
            power = await self.conductor.power_of(inst.id)
        elif power == PowerState.RUNNING:
            with contextlib.suppress(MonostackError):
                await self.guests.plug(inst)
        await self._apply_power(inst, power)

    async def _apply_power(self, inst: Instance, power: PowerState) -> None:
        if power == inst.power_state and (inst.vm_state not in SETTLEABLE
                                          or SETTLE.get(power, inst.vm_state) == inst.vm_state):
            return
        inst.power_state = power
        if inst.vm_state in SETTLEABLE and power in SETTLE:
            inst.vm_state = SETTLE[power]
        await self.conductor.save(inst, deleting=True)

    async def watch_events(self) -> None:
        """Bring in the power changes the driver's lifecycle events announce, until
        cancelled."""
        if not self.driver.capabilities.supports_lifecycle_events:
            return
        async for ev in self.driver.events():
            try:
                if ev.event in (LifecycleEventKind.DEFINED, LifecycleEventKind.UNDEFINED):
                    continue
                inst = self.instances.get(ev.uuid)
                if inst is None or inst.task_state is not None or self.conductor.busy(inst.id):
                    continue
                async with self.admit_lock:
                    inst = self.instances.get(ev.uuid)
                    if inst is None or inst.task_state is not None:
                        continue
                    power = await self.conductor.power_of(inst.id, observed=True)
                    if ev.event in (LifecycleEventKind.STARTED, LifecycleEventKind.RESUMED) \
                            and power == PowerState.RUNNING:
                        # A qemu started behind our back (virsh start, a restore) has fresh
                        # taps in the root namespace: plug them like every start of ours.
                        with contextlib.suppress(MonostackError):
                            await self.guests.plug(inst)
                    await self._apply_power(inst, power)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lifecycle event handling failed")

    async def power_sync_forever(self) -> None:
        """The backstop for a lost event: every POWER_SYNC_INTERVAL, until cancelled."""
        while True:
            await asyncio.sleep(POWER_SYNC_INTERVAL)
            await self.sync_power_logged()

    async def sync_power_logged(self) -> None:
        try:
            await self.sync_power_states()
        except asyncio.CancelledError:
            raise
        except ServiceUnavailable as exc:
            log.warning("power state sync skipped: %s", exc)
        except Exception:
            log.exception("power state sync failed")

    async def sync_power_states(self) -> None:
        for inst in self.instances.list(lambda i: i.task_state is None):
            async with self.admit_lock:
                fresh = self.instances.get(inst.id)
                if fresh is None or fresh.task_state is not None or self.conductor.busy(fresh.id):
                    continue
                if fresh.vm_state in (VmState.ERROR, VmState.BUILDING):
                    continue
                await self._apply_power(fresh, await self.conductor.power_of(fresh.id, observed=True))
