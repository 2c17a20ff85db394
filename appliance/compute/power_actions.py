"""The power actions: start, stop, reboot (soft and hard), pause, unpause, suspend, resume.

Each asks the hypervisor, then records the state it ends in. A guest whose domain is gone
(a host reboot, an undefine behind our back) is spawned anew from the record by start and
reboot; a resumed or restarted guest's taps are plugged again, since the data plane may
have lost them meanwhile.
"""
from __future__ import annotations

import contextlib

from appliance.compute.driver import ComputeDriver, DomainState
from appliance.compute.progress import Guests, Progress
from appliance.compute.records import Task, VmState
from appliance.errors import NotFound


class PowerActions:
    def __init__(self, progress: Progress, driver: ComputeDriver, guests: Guests,
                 shutdown_timeout: float) -> None:
        self.progress, self.driver, self.guests = progress, driver, guests
        self.shutdown_timeout = shutdown_timeout

    async def start(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        if await self.guests.ensure_domain(inst):
            await self.driver.power_on(inst.id)
            await self.guests.plug(inst)
        await self.progress.finish(inst, task, VmState.ACTIVE)

    async def stop(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        with contextlib.suppress(NotFound):
            await self.driver.power_off(inst.id, graceful=True, timeout=self.shutdown_timeout)
        await self.progress.finish(inst, task, VmState.STOPPED)

    async def reboot(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        hard = bool(task.params.get("hard"))
        if not await self.guests.ensure_domain(inst):
            pass  # spawned fresh: that is a (hard) reboot
        elif hard:
            if await self.driver.state(inst.id) in (DomainState.RUNNING, DomainState.PAUSED):
                await self.driver.reboot(inst.id, hard=True)
            else:
                if await self.driver.state(inst.id) == DomainState.SUSPENDED:
                    await self.driver.power_off(inst.id, graceful=False)
                await self.driver.power_on(inst.id)
            await self.guests.plug(inst)
        else:
            await self.driver.reboot(inst.id, hard=False, timeout=self.shutdown_timeout)
            await self.guests.plug(inst)
        await self.progress.finish(inst, task, VmState.ACTIVE)

    async def pause(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        await self.driver.pause(inst.id)
        await self.progress.finish(inst, task, VmState.PAUSED)

    async def unpause(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        await self.driver.unpause(inst.id)
        await self.progress.finish(inst, task, VmState.ACTIVE)

    async def suspend(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        await self.driver.suspend(inst.id)
        await self.progress.finish(inst, task, VmState.SUSPENDED)

    async def resume(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        await self.driver.resume(inst.id)
        await self.guests.plug(inst)
        await self.progress.finish(inst, task, VmState.ACTIVE)
