"""Delete, the resource side: what an instance holds outside its record is given back.

In order: console sessions closed, the domain destroyed, ports returned to the network
service, volumes detached (and deleted when asked at boot: delete_on_termination; a volume
that will not go stays, the delete goes on), a boot volume the build made but never attached
given back to its project, and the instance directory removed. Every step tolerates what a
crash or an earlier attempt already did, so a re-driven delete finishes. The record, its
task and its action log are removed afterwards by the manager, in one commit.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Awaitable, Callable

from appliance.compute import disks
from appliance.compute.driver import ComputeDriver
from appliance.compute.records import Instance
from appliance.errors import MonostackError, NotFound
from appliance.seams import NetworkSeam, VolumeSeam

log = logging.getLogger("monostack.compute")


class Releases:
    def __init__(self, driver: ComputeDriver, network: NetworkSeam | None,
                 volumes: VolumeSeam | None, instances_dir: Path,
                 close_consoles: Callable[[str], Awaitable[None]] | None = None) -> None:
        """close_consoles: ends an instance's serial console sessions (the console proxy)."""
        self.driver, self.network, self.volumes = driver, network, volumes
        self.instances_dir = Path(instances_dir)
        self.close_consoles = close_consoles

    async def release(self, inst: Instance) -> None:
        if self.close_consoles is not None:
            await self.close_consoles(inst.id)
        with contextlib.suppress(NotFound):
            await self.driver.destroy(inst.id)
        if self.network is not None:
            await self.network.deallocate_ports(inst.id)
        vol = self.volumes
        if vol is not None:
            for att in inst.volume_attachments:
                with contextlib.suppress(NotFound):
                    await vol.mark_detached(att.volume_id)
                if att.delete_on_termination:
                    try:
                        await vol.delete_volume(att.volume_id, inst.project_id)
                    except MonostackError as exc:  # the volume stays; the delete goes on
                        log.warning("root volume %s not deleted: %s", att.volume_id, exc,
                                    extra={"instance": inst.id})
            if inst.root_volume_id and not any(a.volume_id == inst.root_volume_id
                                               for a in inst.volume_attachments):
                # a boot volume the build made but never attached: give its reservation
                # back; the volume stays the project's (visible, available), never leaked
                with contextlib.suppress(NotFound):
                    await vol.mark_detached(inst.root_volume_id)
        await asyncio.to_thread(disks.remove_instance_dir, self.instances_dir, inst.id)
