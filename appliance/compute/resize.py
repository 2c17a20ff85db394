"""Resize, and its confirm and revert: an instance moves to another flavor on this host.

Resize claims the new flavor's resources while keeping the old claim (`old_claim`): both
count in the scheduler's usage until the user confirms (the old claim and the root disk's
backup go) or reverts (the old flavor, claim and disk come back). The root disk is copied to
`disk.resize-backup` before it is grown, so a revert restores the bytes as they were; a
volume-backed root is not touched. The guest runs again afterwards only if it ran before.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from appliance.compute import disks
from appliance.compute.driver import ComputeDriver
from appliance.compute.progress import Guests, Progress
from appliance.compute.progress_meter import RESIZE_COPY, copy_file_async
from appliance.compute.records import FlavorSnapshot, Instance, Task, TaskState, VmState
from appliance.compute.scheduler import Claim, RequestSpec
from appliance.errors import BadRequest, NotFound
from appliance.state import from_doc, to_doc

GiB = 1 << 30
BACKUP = "disk.resize-backup"

#: the scheduler's atomic check-and-take (Scheduler.claim): `persist` commits the claim
ClaimFn = Callable[[RequestSpec, Callable[[Claim], Awaitable[None]]], Awaitable[Claim]]


def check_resize(inst: Instance, flavor: FlavorSnapshot) -> None:
    """Admission: Nova's two refusals (400) of a resize request."""
    if inst.root_volume_id is None and flavor.disk and flavor.disk < inst.flavor.disk:
        raise BadRequest("Resizing to a smaller disk flavor is not allowed.")
    if flavor.id == inst.flavor.id:
        raise BadRequest("When resizing, instances must change flavor!")


def resize_params(flavor: FlavorSnapshot) -> dict[str, Any]:
    """The durable task's parameters (JSON): the flavor to move to."""
    return {"flavor": to_doc(flavor)}


class Resizes:
    def __init__(self, progress: Progress, driver: ComputeDriver, guests: Guests,
                 claim: ClaimFn, instances_dir: Path, shutdown_timeout: float) -> None:
        self.progress, self.driver, self.guests = progress, driver, guests
        self.claim = claim
        self.instances_dir = Path(instances_dir)
        self.shutdown_timeout = shutdown_timeout

    async def resize(self, task: Task) -> None:
        p = self.progress
        inst = p.require(task.instance_id)
        new = from_doc(FlavorSnapshot, task.params["flavor"])
        running = inst.vm_state == VmState.ACTIVE

        async def persist(claim: Claim) -> None:
            inst.old_claim, inst.claim = inst.claim, claim
            inst.old_flavor, inst.flavor = inst.flavor, new
            inst.pinned_cpus = list(claim.pcpus)
            inst.resume_running = running
            inst.task_state = TaskState.RESIZE_MIGRATING
            await p.save(inst)

        await self.claim(RequestSpec.for_flavor(inst.id, new), persist)
        if running:
            with contextlib.suppress(NotFound):
                await self.driver.power_off(inst.id, graceful=True,
                                            timeout=self.shutdown_timeout)
        p.advance(inst.id, RESIZE_COPY[0])
        d = disks.instance_dir(self.instances_dir, inst.id)
        root = d / "disk"
        if inst.root_volume_id is None:
            # the backup copy is most of a resize's disk work: its bytes are its progress
            await copy_file_async(root, d / BACKUP, p.copying(inst.id, *RESIZE_COPY))
            if new.disk > 0:
                await disks.grow(root, "qcow2", new.disk * GiB)
        await p.step(inst, TaskState.RESIZE_FINISH)
        p.advance(inst.id, RESIZE_COPY[1] + 5)
        await self.guests.respawn(inst, running=running)
        await p.finish(inst, task, VmState.RESIZED)

    async def confirm(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        backup = disks.instance_dir(self.instances_dir, inst.id) / BACKUP
        await asyncio.to_thread(lambda: backup.unlink(missing_ok=True))
        inst.old_claim = inst.old_flavor = None
        await self.progress.finish(inst, task)

    async def revert(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        d = disks.instance_dir(self.instances_dir, inst.id)
        with contextlib.suppress(NotFound):
            await self.driver.destroy(inst.id)
        if inst.root_volume_id is None and (d / BACKUP).exists():
            await asyncio.to_thread(os.replace, d / BACKUP, d / "disk")
        if inst.old_flavor:
            inst.flavor, inst.old_flavor = inst.old_flavor, None
        if inst.old_claim:
            inst.claim, inst.old_claim = inst.old_claim, None
        inst.pinned_cpus = list(inst.claim.pcpus) if inst.claim else []
        await self.guests.respawn(inst, running=inst.resume_running)
        await self.progress.finish(inst, task)
