"""What an action handler may touch of the task queue and the build pipeline, and what
reconciliation may touch of them (`Conductor`, `Spawner`).

The rooms holding the action handlers (resize.py, rescue.py, rebuild.py, snapshot.py,
volume_attach.py, interface_attach.py, power_actions.py, delete.py) are handed these two
narrow faces instead of the manager, so each room can be read and unit-tested alone with a
small fake of either. The manager (compute/manager.py) is the real `Progress`: its saves
refuse a task a delete took over, keep the scheduler's usage in step and announce state
changes; the build pipeline (compute/build.py `Builder`) is the real `Guests`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from appliance.compute.records import Instance, PowerState, Task, TaskState, VmState
from appliance.seams import BootImage


class Progress(Protocol):
    """The instance records as a running task writes them."""

    def require(self, instance_id: str) -> Instance:
        """The stored record; NotFound if there is none."""
        ...

    async def save(self, inst: Instance) -> None:
        """Commit the record mid-task (raises once a delete took the instance over)."""
        ...

    async def step(self, inst: Instance, task_state: TaskState) -> None:
        """Record the step the task has reached."""
        ...

    async def finish(self, inst: Instance, task: Task, vm_state: VmState | None = None
                     ) -> None:
        """End the task: the power state read anew, `vm_state` (or the one the power state
        settles to), no task_state, the durable task removed, in one commit."""
        ...

    async def power_of(self, instance_id: str) -> PowerState:
        """What the hypervisor says; NOSTATE when it has no domain."""
        ...

    def advance(self, instance_id: str, percent: float) -> None:
        """How far the running action is, for the API's `progress` (never backwards)."""
        ...

    def copying(self, instance_id: str, low: int, high: int) -> Callable[[int, int], None]:
        """A (done, total) bytes callback moving the action from `low` to `high` percent."""
        ...


class Guests(Protocol):
    """The parts of the build pipeline other actions reuse."""

    async def boot_image(self, image_id: str, project_id: str) -> BootImage:
        """The image to boot from (BadRequest when no image service runs)."""
        ...

    async def prepare_disks(self, inst: Instance, boot: BootImage | None, *,
                            fresh: bool) -> None:
        """Root disk (anew when `fresh`) and config drive in the instance's directory."""
        ...

    async def make_root(self, root: Path, boot: BootImage, flavor_disk_gb: int) -> None:
        """A root disk at `root` over the image, grown to the flavor's disk."""
        ...

    async def respawn(self, inst: Instance, *, running: bool, rescue: bool = False) -> None:
        """Destroy the domain and define it anew from the record; left off unless
        `running`."""
        ...

    async def plug(self, inst: Instance) -> None:
        """The instance's taps into the data plane."""
        ...

    async def ensure_domain(self, inst: Instance) -> bool:
        """True if the domain exists; else it is spawned from the record (then running)."""
        ...


class Conductor(Protocol):
    """The task queue and the record saves as reconciliation (compute/reconcile.py) drives
    them. The manager is the real one."""

    def busy(self, instance_id: str) -> bool:
        """A task runs for the instance (its own writes will settle the record)."""
        ...

    def take_over(self, instance_id: str) -> None:
        """A delete owns the instance: saves of any other task are refused from now on."""
        ...

    def redrive(self, task: Task) -> None:
        """Run the stored task (again) in the background."""
        ...

    async def fail(self, task: Task, exc: BaseException) -> None:
        """End the task as failed: the fault recorded, the durable task removed."""
        ...

    async def settle(self, inst: Instance) -> None:
        """Idle state = what the hypervisor says (not saved)."""
        ...

    async def save(self, inst: Instance, *extra: Any, deleting: bool = False) -> None:
        """Commit the record (plus `extra` ops); `deleting`: even once a delete took over."""
        ...

    async def power_of(self, instance_id: str, *, observed: bool = False) -> PowerState:
        """What the hypervisor says; NOSTATE when it has no domain (`observed`: an
        unreachable hypervisor raises instead of reading as no domain)."""
        ...


class Spawner(Protocol):
    """What reconciliation uses of the build pipeline to run guests again."""

    async def spawn(self, inst: Instance, *, rescue: bool = False) -> None:
        """Define and start the domain from the record, taps plugged."""
        ...

    async def plug(self, inst: Instance) -> None:
        """The instance's taps into the data plane."""
        ...
