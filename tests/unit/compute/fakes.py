"""Fakes the compute rooms' unit tests share: compute/progress.py's Progress over a dict, and
a real scheduler over a small made-up host."""
from __future__ import annotations

from pathlib import Path

from appliance.compute.driver import HostInfo, HostNumaCell, HypervisorType
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.compute.power import POWER, SETTLE
from appliance.compute.records import Instance, PowerState, Task, TaskState, VmState
from appliance.compute.scheduler import Scheduler
from appliance.config import ComputeConfig
from appliance.errors import NotFound


class Records:
    """Progress over a dict: what each save and step recorded, in order, and the scheduler
    kept in step with the records as the manager's saves keep it."""

    def __init__(self, driver: LibvirtDriver, scheduler: Scheduler | None = None) -> None:
        self.driver, self.scheduler = driver, scheduler
        self.stored: dict[str, Instance] = {}
        self.trail: list[tuple[VmState, TaskState | None]] = []
        self.finished: list[str] = []
        self.percents: list[int] = []

    def put(self, inst: Instance) -> Instance:
        self.stored[inst.id] = inst
        if self.scheduler is not None:
            self.scheduler.sync(inst)
        return inst

    def require(self, instance_id: str) -> Instance:
        if instance_id not in self.stored:
            raise NotFound(f"Instance {instance_id} could not be found.")
        return self.stored[instance_id]

    async def save(self, inst: Instance) -> None:
        self.trail.append((inst.vm_state, inst.task_state))
        self.put(inst)

    async def step(self, inst: Instance, task_state: TaskState) -> None:
        inst.task_state = task_state
        await self.save(inst)

    async def finish(self, inst: Instance, task: Task, vm_state: VmState | None = None) -> None:
        inst.power_state = await self.power_of(inst.id)
        inst.vm_state = vm_state or SETTLE.get(inst.power_state, inst.vm_state)
        inst.task_state = None
        await self.save(inst)
        self.finished.append(task.action)

    def advance(self, instance_id: str, percent: float) -> None:
        self.percents.append(int(percent))

    def copying(self, instance_id: str, low: int, high: int):
        return lambda done, total: self.percents.append(low + (high - low) * done // total)

    async def power_of(self, instance_id: str) -> PowerState:
        try:
            return POWER[await self.driver.state(instance_id)]
        except NotFound:
            return PowerState.NOSTATE


def scheduler_of(tmp: Path, cpus: int = 4) -> Scheduler:
    info = HostInfo(hostname="h", arch="x86_64", cpus=cpus, memory_mib=4096,
                    numa_cells=(HostNumaCell(0, tuple(range(cpus)), 4096),),
                    hypervisor_type=HypervisorType.TEST, libvirt_version="9.0.0",
                    hypervisor_version="8.0.0")
    s = Scheduler(ComputeConfig(reserved_host_memory_mb=0, cpu_allocation_ratio=1.0,
                                disk_gb=100), info, tmp)
    s.disk_gb = 100
    return s
