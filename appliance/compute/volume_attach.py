"""Volume attachments: a volume joins or leaves an instance as a virtio disk.

The next free target after the root (vdb, vdc, …) is chosen from the instance's recorded
attachments; the volume service marks the volume in-use only after the hypervisor took the
disk (a guest without a domain takes it at its next spawn, from the record), and gives it
back as available if the hypervisor refused, so a volume is never left stuck attaching.
Detach removes the disk from a running guest, then the bookkeeping on both sides.
"""
from __future__ import annotations

import asyncio
import contextlib

from appliance.compute.driver import ComputeDriver, DiskFormat, DiskSpec
from appliance.compute.progress import Progress
from appliance.compute.records import PowerState, Task, VolumeAttachment
from appliance.errors import BadRequest, Conflict, NotFound
from appliance.seams import VolumeSeam

TARGETS = tuple(f"vd{c}" for c in "bcdefghijklmnopqrstuvwxyz")


def free_target(attachments: list[VolumeAttachment]) -> str:
    """The first virtio target no attachment holds (vda is the root's)."""
    used = {a.target for a in attachments} | {"vda"}
    return next(t for t in TARGETS if t not in used)


class VolumeAttachments:
    def __init__(self, progress: Progress, driver: ComputeDriver,
                 volumes: VolumeSeam | None) -> None:
        self.progress, self.driver, self.volumes = progress, driver, volumes

    def _seam(self) -> VolumeSeam:
        if self.volumes is None:
            raise BadRequest("No volume service is running.")
        return self.volumes

    async def attach(self, task: Task) -> VolumeAttachment:
        """The attachment as recorded on the instance."""
        inst = self.progress.require(task.instance_id)
        vol_seam = self._seam()
        volume_id = task.params["volume_id"]
        if any(a.volume_id == volume_id for a in inst.volume_attachments):
            raise Conflict(f"volume {volume_id} is already attached to {inst.id}")
        vol = await vol_seam.volume_for_attach(volume_id, inst.project_id)
        target = free_target(inst.volume_attachments)
        device = f"/dev/{target}"
        try:
            if await self.progress.power_of(inst.id) != PowerState.NOSTATE:
                await self.driver.attach_disk(inst.id, DiskSpec(
                    path=str(vol.path), format=DiskFormat(vol.format), target=target,
                    serial=volume_id[:20]))
        except BaseException:
            # the hypervisor refused: the volume is available again, not stuck attaching
            await asyncio.shield(vol_seam.mark_detached(volume_id))
            raise
        await vol_seam.mark_attached(volume_id, inst.id, device)
        att = VolumeAttachment(id=volume_id, volume_id=volume_id, device=device,
                               path=str(vol.path), format=vol.format)
        inst.volume_attachments.append(att)
        await self.progress.finish(inst, task, inst.vm_state)
        return att

    async def detach(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        volume_id = task.params["volume_id"]
        att = next(a for a in inst.volume_attachments if a.volume_id == volume_id)
        with contextlib.suppress(NotFound):
            await self.driver.detach_disk(inst.id, att.target)
        await self._seam().mark_detached(volume_id)
        inst.volume_attachments = [a for a in inst.volume_attachments
                                   if a.volume_id != volume_id]
        await self.progress.finish(inst, task, inst.vm_state)
