"""Rescue and unrescue: the guest boots a rescue image with its own root disk beside it.

Rescue writes a fresh root from the rescue image (the given one, else the instance's own) as
`disk.rescue`, attached first (vda) with the instance's root second (vdb), and the guest
runs from it: RESCUED. Unrescue defines the domain from the record again (the normal disks)
and removes the rescue disk: ACTIVE. A volume-backed instance has no image of its own to
rescue from, so it needs one named.
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from appliance.compute import disks
from appliance.compute.driver import ComputeDriver
from appliance.compute.progress import Guests, Progress
from appliance.compute.records import Task, VmState
from appliance.errors import BadRequest, NotFound

RESCUE_DISK = "disk.rescue"


class Rescues:
    def __init__(self, progress: Progress, driver: ComputeDriver, guests: Guests,
                 instances_dir: Path, shutdown_timeout: float) -> None:
        self.progress, self.driver, self.guests = progress, driver, guests
        self.instances_dir = Path(instances_dir)
        self.shutdown_timeout = shutdown_timeout

    async def rescue(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        image_id = task.params.get("image_id") or inst.image_id
        if not image_id:
            raise BadRequest("A rescue image is needed for a volume-backed instance.")
        boot = await self.guests.boot_image(image_id, inst.project_id)
        d = await asyncio.to_thread(disks.make_instance_dir, self.instances_dir, inst.id)
        await self.guests.make_root(d / RESCUE_DISK, boot, 0)
        inst.resume_running = inst.vm_state == VmState.ACTIVE
        with contextlib.suppress(NotFound):
            await self.driver.power_off(inst.id, graceful=True, timeout=self.shutdown_timeout)
        await self.guests.respawn(inst, running=True, rescue=True)
        await self.progress.finish(inst, task, VmState.RESCUED)

    async def unrescue(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        await self.guests.respawn(inst, running=True)
        rescue_disk = disks.instance_dir(self.instances_dir, inst.id) / RESCUE_DISK
        await asyncio.to_thread(lambda: rescue_disk.unlink(missing_ok=True))
        await self.progress.finish(inst, task, VmState.ACTIVE)
