"""Snapshot (createImage): the instance's root disk becomes a new image in the image service.

The disk is copied into the instance's directory as a standalone qcow2 (by the hypervisor
while the guest runs, or read from the file under the test driver, where no guest writes
it), handed to the image service with Nova's snapshot properties, and removed whether or not
the upload succeeded. The instance's state is left as it was.
"""
from __future__ import annotations

import asyncio
import uuid as uuidlib
from pathlib import Path

from appliance.compute import disks
from appliance.compute.driver import ComputeDriver, DiskFormat
from appliance.compute.progress import Progress
from appliance.compute.progress_meter import (
    SNAPSHOT_COPY, disk_data_bytes, watch_growth, written_copy)
from appliance.compute.records import Task
from appliance.errors import BadRequest
from appliance.seams import ImageSeam


class Snapshots:
    def __init__(self, progress: Progress, driver: ComputeDriver, images: ImageSeam | None,
                 instances_dir: Path) -> None:
        self.progress, self.driver, self.images = progress, driver, images
        self.instances_dir = Path(instances_dir)

    async def snapshot(self, task: Task) -> str:
        """The new image's id."""
        inst = self.progress.require(task.instance_id)
        if self.images is None:
            raise BadRequest("No image service is running.")
        d = disks.instance_dir(self.instances_dir, inst.id)
        dest = d / f"snapshot-{uuidlib.uuid4().hex}.qcow2"
        # the copy's bytes as it grows (the driver writes a temporary name, then renames)
        watch = asyncio.create_task(watch_growth(
            lambda: written_copy(dest), await asyncio.to_thread(disk_data_bytes, d / "disk"),
            self.progress.copying(inst.id, *SNAPSHOT_COPY)))
        try:
            if self.driver.capabilities.runs_guests:
                await self.driver.snapshot_disk(inst.id, str(dest), DiskFormat.QCOW2)
            else:  # test driver: the disk file is the truth, no domain ever writes it
                await disks.convert(d / "disk", "qcow2", dest, "qcow2")
            watch.cancel()
            self.progress.advance(inst.id, SNAPSHOT_COPY[1])
            props = {"image_type": "snapshot", "instance_uuid": inst.id,
                     "base_image_ref": inst.image_id or "", **task.params.get("metadata", {})}
            image_id = await self.images.create_image_from_file(
                name=task.params["name"], project_id=inst.project_id, path=dest,
                disk_format="qcow2", properties=props)
        finally:
            watch.cancel()
            await asyncio.to_thread(lambda: dest.unlink(missing_ok=True))
        await self.progress.finish(inst, task, inst.vm_state)
        return image_id
