"""Rebuild: the instance gets a fresh root disk from an image (the same or another), keeping
its id, ports, volumes and flavor; optionally a new name and metadata. It runs again unless
it was stopped, and a fault from an earlier failure is cleared."""
from __future__ import annotations

import contextlib

from appliance.compute.driver import ComputeDriver
from appliance.compute.progress import Guests, Progress
from appliance.compute.records import Task, VmState, now
from appliance.errors import NotFound


class Rebuilds:
    def __init__(self, progress: Progress, driver: ComputeDriver, guests: Guests) -> None:
        self.progress, self.driver, self.guests = progress, driver, guests

    async def rebuild(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        image_id = task.params["image_id"]
        boot = await self.guests.boot_image(image_id, inst.project_id)
        running = inst.vm_state != VmState.STOPPED
        with contextlib.suppress(NotFound):
            await self.driver.destroy(inst.id)
        inst.image_id = image_id
        if task.params.get("name"):
            inst.name = task.params["name"]
        if task.params.get("metadata") is not None:
            inst.metadata = dict(task.params["metadata"])
        await self.guests.prepare_disks(inst, boot, fresh=True)
        await self.guests.respawn(inst, running=running)
        inst.fault = None
        inst.launched_at = now()
        await self.progress.finish(inst, task)
