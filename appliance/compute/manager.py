"""The conductor: admits instance actions, runs them from a durable task queue, reconciles.

Admission (`_admit`) is one step under one lock: the instance must be idle (task_state None)
and in an allowed vm_state, else `Conflict` (409); the new task_state and the durable `Task`
record (id = instance id: at most one per instance) are committed in one transaction. The
API answers at once; an asyncio task runs the work, recording each step (task_state) durably,
and the final state is committed together with the Task's removal. So after a crash every Task
left in the store names an unfinished action, and `reconcile()` at startup finishes it:
builds and deletes are re-driven (both are idempotent), other actions are settled to the power
state libvirt reports. Domains libvirt has and we do not are orphans (compute/orphans.py):
those this appliance provably defined (its id in their metadata) are removed — at start and
every ORPHAN_SWEEP_INTERVAL, since a define can land after its server is gone — and any other
domain is reported (an event and a log line), never destroyed or adopted.

Delete may interrupt anything: it marks the instance (task_state deleting, Task "delete"
replacing the running one) and sets an abort flag; the running task stops at its next step
(its writes are refused from then on), and the delete runs after it, so a domain a spawn was
still creating is destroyed too. A task stuck in the hypervisor's spawn is not waited for: it
is cancelled and the delete runs at once; a define that lands later is swept as an orphan.

Power changes made inside the guest reach the record through driver lifecycle events, and a
periodic sync re-reads every idle instance's power state as a backstop.

Rooms behind this facade: `build.py` (the build pipeline: claim, disks, config drive, domain,
plugging), `reconcile.py` (restart reconciliation, orphans, lifecycle events, power sync),
and one room per kind of action: `power_actions.py`, `resize.py` (resize, confirm, revert),
`rebuild.py`, `rescue.py`, `snapshot.py`, `volume_attach.py`, `interface_attach.py`,
`delete.py` (the resources a delete gives back). Each room is built here with only what it
uses (no manager, no context) and writes through the narrow faces in `progress.py`, which
this manager and the build pipeline implement. Here remain admission, the task queue with its
explicit action table, the record saves, and what compute/service.py calls.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from appliance.component import ApplianceContext
from appliance.compute import disks, orphans
from appliance.compute.actions import NAMES, ActionLog
from appliance.compute.build import Builder
from appliance.compute.console import ConsoleProxy
from appliance.compute.delete import Releases
from appliance.compute.driver import ComputeDriver, DomainSpec
from appliance.compute.interface_attach import InterfaceAttachments
from appliance.compute.passwords import InstancePasswords
from appliance.compute.power import POWER, SETTLE, SETTLEABLE, fault_of
from appliance.compute.progress_meter import ProgressMeter
from appliance.compute.power_actions import PowerActions
from appliance.compute.rebuild import Rebuilds
from appliance.compute.reconcile import Reconciler
from appliance.compute.records import (
    DEFAULT_QUOTAS,
    Instance,
    PowerState,
    QuotaSet,
    Task,
    TaskState,
    FlavorSnapshot,
    VmState,
    VolumeAttachment,
)
from appliance.compute.rescue import Rescues
from appliance.compute.resize import Resizes, check_resize, resize_params
from appliance.compute.scheduler import Claim, RequestSpec, Scheduler
from appliance.compute.snapshot import Snapshots
from appliance.compute.volume_attach import VolumeAttachments
from appliance.compute.usage import ProjectUsage
from appliance.seams import ImageSeam, NetworkSeam, PortBinding, VolumeSeam
from appliance.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MonostackError,
    NotFound,
    ServiceUnavailable,
)
from appliance.quota import QuotaSource, Reservation
from appliance.state import Repository

log = logging.getLogger("monostack.compute")
#: seconds between attempts to reach the hypervisor at start (then the last, on and on)
BRING_UP_DELAYS = (0.5, 1.0, 2.0, 5.0)

GiB = 1 << 30
#: bytes of serial log os-getConsoleOutput reads at most
CONSOLE_TAIL_BYTES = 256 * 1024


INSTANCE_RESOURCES = ("instances", "cores", "ram")


def over_quota(resource: str, asked: int, used: int, limit: int) -> Forbidden:
    """Nova answers an overrun with 403 and this text."""
    return Forbidden(f"Quota exceeded for {resource}: Requested {asked}, but already used "
                     f"{used} of {limit} {resource}")


class Aborted(Exception):
    """A delete took over the instance: the running task stops writing."""


class ComputeManager:
    def __init__(self, ctx: ApplianceContext, driver: ComputeDriver, *,
                 images: ImageSeam | None = None, volumes: VolumeSeam | None = None,
                 network: NetworkSeam | None = None,
                 console: ConsoleProxy | None = None) -> None:
        """images/volumes/network: the components compute uses, None when one does not run
        (booting from an image is then a 400, instances boot without NICs); console: the
        serial console proxy, whose sessions a delete closes."""
        self.ctx = ctx
        self.images, self.volumes, self.network = images, volumes, network
        self.config = ctx.config.compute
        self.driver = driver
        self.store = ctx.store
        self.instances: Repository[Instance] = Repository(ctx.store, "instances", Instance,
                                                          kind="Instance")
        self.tasks: Repository[Task] = Repository(ctx.store, "compute_tasks", Task)
        self.quotas: Repository[QuotaSet] = Repository(ctx.store, "compute_quotas", QuotaSet)
        self.actions = ActionLog(ctx.store)
        self.usage = ProjectUsage(ctx.store, self.instances.table)
        self.passwords = InstancePasswords(ctx.store)
        self.instances_dir = Path(self.config.instances_dir)
        self.scheduler: Scheduler | None = None
        self.host_info: Any = None
        #: why the hypervisor could not be reached at start (retrying), for /healthz
        self.bring_up_error: str | None = None
        #: set when the first attempt to reach the hypervisor failed: start-up is as settled
        #: as it gets until libvirtd answers (`monostack init` must not wait for it)
        self.unreachable = asyncio.Event()
        self._admit_lock = asyncio.Lock()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._abort: set[str] = set()
        self._background: list[asyncio.Task[Any]] = []
        self._statuses: dict[str, str] = {}
        #: the `progress` of each running action (compute/progress_meter.py), in memory only
        self.meter = ProgressMeter()
        #: this appliance's id, written into every domain's metadata (compute/orphans.py)
        self.appliance_id = ""
        self._stopping = False
        #: the build pipeline (compute/build.py)
        self.build = Builder(
            self, driver, self.instances_dir, images=images, volumes=volumes, network=network,
            claim=self._claim, hostname=lambda: self.host_info.hostname,
            appliance_id=lambda: self.appliance_id, password_of=self.passwords.get,
            force_config_drive=self.config.force_config_drive)
        #: restart reconciliation, orphans, lifecycle events, power sync (compute/reconcile.py)
        self.reconciler = Reconciler(
            driver, self.instances, self.tasks, self, self.build, ctx.events, self._admit_lock,
            resume_guests=self.config.resume_guests_on_start,
            appliance_id=lambda: self.appliance_id)
        # the rooms holding the action handlers: each gets only what it uses
        timeout = self.config.graceful_shutdown_timeout
        self.power = PowerActions(self, driver, self.build, timeout)
        self.resizes = Resizes(self, driver, self.build, self._claim, self.instances_dir,
                               timeout)
        self.rebuilds = Rebuilds(self, driver, self.build)
        self.rescues = Rescues(self, driver, self.build, self.instances_dir, timeout)
        self.snapshots = Snapshots(self, driver, images, self.instances_dir)
        self.volume_attachments = VolumeAttachments(self, driver, volumes)
        self.interface_attachments = InterfaceAttachments(self, driver, network)
        self.releases = Releases(driver, network, volumes, self.instances_dir,
                                 console.close_instance if console is not None else None)
        #: task action (as the stored task records name it) → its handler
        self._handlers: dict[str, Callable[[Task], Awaitable[Any]]] = {
            "build": self.build.build, "delete": self._do_delete,
            "start": self.power.start, "stop": self.power.stop, "reboot": self.power.reboot,
            "pause": self.power.pause, "unpause": self.power.unpause,
            "suspend": self.power.suspend, "resume": self.power.resume,
            "resize": self.resizes.resize, "confirm_resize": self.resizes.confirm,
            "revert_resize": self.resizes.revert, "rebuild": self.rebuilds.rebuild,
            "rescue": self.rescues.rescue, "unrescue": self.rescues.unrescue,
            "snapshot": self.snapshots.snapshot,
            "attach_volume": self.volume_attachments.attach,
            "detach_volume": self.volume_attachments.detach,
            "attach_interface": self.interface_attachments.attach,
            "detach_interface": self.interface_attachments.detach,
        }
        ctx.quotas.register(QuotaSource(INSTANCE_RESOURCES, self.quota_limits,
                                        self.quota_usage, over_quota))
        #: set once the start-up reconciliation is over; admission waits for it (the lock)
        self.reconciled = asyncio.Event()

    # -- lifecycle of the manager -----------------------------------------------------------

    async def start(self) -> None:
        """Returns before the hypervisor is reached: connecting to libvirt (a KVM probe guest
        when no verdict is cached), loading the scheduler and reconciling run in the
        background (`reconciled`), so the API answers meanwhile. Until the hypervisor is
        reached, whatever needs it answers 503; reads see the recorded state."""
        self.driver.on_reconnect = self._after_reconnect
        await asyncio.to_thread(self.instances_dir.mkdir, parents=True, exist_ok=True)
        self.appliance_id = await orphans.appliance_id(self.store)
        self._background.append(asyncio.create_task(self.reconciler.watch_events()))
        # Reconciliation may start every guest that ran before (1,000 domains take a while):
        # the API answers meanwhile. Reads see the recorded state; an action answers 503 until
        # the hypervisor is reached, then waits for the admission lock, held until
        # reconciliation is done, so none acts on a stale record.
        await self._admit_lock.acquire()
        self._background.append(asyncio.create_task(self._reconcile_then_sync()))
        self._background.append(asyncio.create_task(
            self.reconciler.sweep_orphans_forever(self.reconciled)))

    async def _reconcile_then_sync(self) -> None:
        try:
            await self.bring_up()
            await self.reconciler.reconcile()
        except Exception as exc:
            if self.scheduler is None:  # never reached the hypervisor: /healthz says why
                log.exception("compute could not start")
                self.bring_up_error = f"could not start: {exc}"
                self.unreachable.set()
            else:
                log.exception("start-up reconciliation failed; the periodic power sync goes on")
        finally:
            self._admit_lock.release()
            self.reconciled.set()
        if self.scheduler is not None:
            await self.reconciler.power_sync_forever()

    def _after_reconnect(self) -> None:
        """The driver reconnected to libvirtd: read every power state again."""
        if not self._stopping:
            self._background.append(asyncio.create_task(self.reconciler.sync_power_logged()))

    async def bring_up(self) -> None:
        """Connect to the hypervisor (retrying while libvirtd does not answer: it may start
        after us) and load the scheduler from the records; the scheduler is set last, with no
        await between loading it and setting it, so no record saved meanwhile is missed."""
        attempt = 0
        while True:
            try:
                await self.driver.connect()
                host_info = await self.driver.host_info()
                break
            except MonostackError as exc:
                if self.bring_up_error is None:
                    log.warning("cannot reach the hypervisor at start: %s; retrying", exc)
                self.bring_up_error = str(exc)
                self.unreachable.set()
                await asyncio.sleep(BRING_UP_DELAYS[min(attempt, len(BRING_UP_DELAYS) - 1)])
                attempt += 1
        if self.network is not None:
            # the data plane is rebuilt before any guest is started or plugged (bridges, taps)
            await self.network.settled()
        self.host_info = host_info
        scheduler = Scheduler(self.config, host_info, self.instances_dir)
        await scheduler.refresh_disk()
        instances = self.instances.list()  # 1,000 records decoded once
        scheduler.load(instances)
        for inst in instances:
            self._statuses.setdefault(inst.id, inst.status)
        self.scheduler = scheduler
        self.bring_up_error = None

    def require_up(self) -> None:
        """ServiceUnavailable (503, Nova's error shape) while the hypervisor has not been
        reached since the start: an action must not wait on a libvirtd that may never come."""
        if self.scheduler is None:
            why = (f"cannot reach {self.config.libvirt_uri}: {self.bring_up_error}"
                   if self.bring_up_error else f"connecting to {self.config.libvirt_uri}")
            raise ServiceUnavailable(f"Compute is starting ({why}); retry shortly.")

    @contextlib.asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        """The admission lock, once the hypervisor is up (503 before): held by the start-up
        reconciliation, so no action acts on a record reconciliation is still correcting."""
        self.require_up()
        async with self._admit_lock:
            yield

    async def stop(self) -> None:
        """Stop taking work; running tasks are cancelled and left durable for the next start."""
        self._stopping = True
        for t in self._background:
            t.cancel()
        running = list(self._running.values())
        for t in running:
            t.cancel()
        for t in [*self._background, *running]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._background.clear()
        await self.driver.close()

    async def wait_idle(self, timeout: float = 60.0) -> None:
        """Tests: wait until the start-up reconciliation is over and no task runs."""
        async with asyncio.timeout(timeout):
            await self.reconciled.wait()
            while self._running:
                await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    # -- saving ---------------------------------------------------------------------------

    # compute/progress.py's Progress, as the rooms write through it

    def require(self, instance_id: str) -> Instance:
        return self.instances.require(instance_id)

    async def save(self, inst: Instance, *extra: Any, finishing: Task | None = None,
                   deleting: bool = False) -> None:
        """Commit the record (plus extra ops) and keep scheduler usage in step with it."""
        if inst.id in self._abort and not deleting:
            raise Aborted(inst.id)
        inst.touch()
        ops = [self.instances.put_op(inst), *extra]
        if finishing is not None:
            ops.append(self.tasks.delete_op(finishing.id))
        await self.store.commit(ops)
        if self.scheduler is not None:  # else bring_up() loads it from the records later
            self.scheduler.sync(inst)
        await self._announce(inst)

    async def _announce(self, inst: Instance, message: str = "") -> None:
        status = inst.status
        if self._statuses.get(inst.id) == status and not message:
            return
        self._statuses[inst.id] = status
        data: dict[str, Any] = {"status": status, "vm_state": str(inst.vm_state),
                                "task_state": inst.task_state and str(inst.task_state),
                                "power_state": int(inst.power_state)}
        if inst.fault and status == "ERROR":
            data["fault"] = inst.fault.message
        await self.ctx.events.publish(
            "instance.fault" if status == "ERROR" else "instance.state", "instance", inst.id,
            inst.project_id, message or f"{inst.name}: {status}", **data)

    async def step(self, inst: Instance, task_state: TaskState) -> None:
        inst.task_state = task_state
        self.meter.step(inst.id, task_state)
        await self.save(inst)

    def advance(self, instance_id: str, percent: float) -> None:
        self.meter.set(instance_id, percent)

    def copying(self, instance_id: str, low: int, high: int) -> Callable[[int, int], None]:
        return self.meter.span(instance_id, low, high)

    async def finish(self, inst: Instance, task: Task, vm_state: VmState | None = None
                     ) -> None:
        inst.power_state = await self.power_of(inst.id)
        inst.vm_state = vm_state or SETTLE.get(inst.power_state, inst.vm_state)
        inst.task_state = None
        await self.save(inst, finishing=task)

    async def _claim(self, spec: RequestSpec,
                     persist: Callable[[Claim], Awaitable[None]]) -> Claim:
        assert self.scheduler is not None, "claims are taken once the manager started"
        return await self.scheduler.claim(spec, persist)

    # -- quotas ---------------------------------------------------------------------------

    def quota_limits(self, project_id: str) -> dict[str, int]:
        qs = self.quotas.get(project_id)
        return {**DEFAULT_QUOTAS, **(qs.limits if qs else {})}

    def quota_usage(self, project_id: str) -> dict[str, int]:
        return self.usage.of(project_id)

    def reserve_instances(self, project_id: str, flavor: FlavorSnapshot,
                          count: int) -> Reservation:
        """Instances, cores and ram for `count` servers of `flavor`: take it (await or
        `async with`) before building them, and hand it to `create`."""
        return self.ctx.quotas.reserve(project_id, {
            "instances": count, "cores": count * flavor.vcpus, "ram": count * flavor.ram})

    # -- admission -------------------------------------------------------------------------

    async def create(self, instances: list[Instance], params: dict[str, Any],
                     reservation: Reservation | None = None) -> list[Instance]:
        """Record new instances (BUILD) with their build tasks. Their quota is `reservation`
        (taken here when not given); it is committed once the records are stored and
        released if storing fails, so parallel creates cannot exceed the quota."""
        held = reservation or await self.reserve_instances(
            instances[0].project_id, instances[0].flavor, len(instances))
        try:
            tasks, ops = [], []
            for i in instances:
                recorded, action_id = self.actions.begin_ops(i.id, i.project_id, NAMES["build"][0],
                                                             event=NAMES["build"][1])
                tasks.append(Task(id=i.id, instance_id=i.id, action="build", params=params,
                                  action_id=action_id))
                ops += recorded
            ops += [self.instances.put_op(i) for i in instances]
            ops += [self.tasks.put_op(t) for t in tasks]
            async with self._admission():
                pass  # not before start-up reconciliation is over; new records race nothing
            # outside the lock: a burst of creates shares fsyncs instead of taking one each
            await held.store(self.store.commit(ops))
        except BaseException:
            held.release()
            raise
        for inst, task in zip(instances, tasks):
            self.scheduler.sync(inst)  # type: ignore[union-attr]
            await self._announce(inst, f"{inst.name}: BUILD")
            self._launch(task)
        return instances

    async def _admit(self, instance_id: str, action: str, task_state: TaskState,
                     allowed: set[VmState], params: dict[str, Any] | None = None,
                     check: Callable[[Instance], None] | None = None) -> asyncio.Task[Any]:
        async with self._admission():
            inst = self.instances.require(instance_id)
            if inst.task_state is not None:
                raise Conflict(f"Cannot '{action}' instance {instance_id} while it is in "
                               f"task_state {inst.task_state}")
            if inst.vm_state not in allowed:
                raise Conflict(f"Cannot '{action}' instance {instance_id} while it is in "
                               f"vm_state {inst.vm_state}")
            if check is not None:
                check(inst)
            inst.task_state = task_state
            ops, action_id = self.actions.begin_ops(inst.id, inst.project_id, NAMES[action][0])
            task = Task(id=inst.id, instance_id=inst.id, action=action, params=params or {},
                        action_id=action_id)
            await self.save(inst, self.tasks.put_op(task), *ops)
        return self._launch(task)

    def _launch(self, task: Task, after: asyncio.Task[Any] | None = None) -> asyncio.Task[Any]:
        t = asyncio.create_task(self._run(task, after), name=f"{task.action}-{task.instance_id}")
        self._running[task.instance_id] = t
        t.add_done_callback(lambda done: self._done(task.instance_id, done))
        return t

    def _done(self, instance_id: str, t: asyncio.Task[Any]) -> None:
        if self._running.get(instance_id) is t:
            del self._running[instance_id]
        if not t.cancelled() and t.exception() is not None:
            pass  # already recorded as a fault by _run; retrieved so asyncio stays quiet

    async def _run(self, task: Task, after: asyncio.Task[Any] | None = None) -> Any:
        if after is not None:
            with contextlib.suppress(BaseException):
                await after
        handler = self._handlers[task.action]
        event = NAMES.get(task.action, (task.action, f"compute_{task.action}"))[1]
        await self._action_event(task, event)
        began = time.monotonic()
        self.meter.begin(task.instance_id)
        try:
            result = await handler(task)
            await self._action_event(task, event, done=True)
            self.ctx.metrics.task_duration.labels(task.action, "success").observe(
                time.monotonic() - began)
            return result
        except Aborted:
            log.info("task gave way to a delete", extra={"instance": task.instance_id,
                                                         "action": task.action})
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, MonostackError) or exc.status >= 500:
                log.warning("task failed: %s", exc, extra={"instance": task.instance_id,
                                                           "action": task.action})
            await self._action_event(task, event, done=True, error=exc)
            self.ctx.metrics.task_duration.labels(task.action, "error").observe(
                time.monotonic() - began)
            await self._fail(task, exc)
            raise
        finally:
            self.meter.end(task.instance_id)

    async def _action_event(self, task: Task, event: str, *, done: bool = False,
                            error: BaseException | None = None) -> None:
        """The step's start or end in the instance's action log; a log write that fails
        must not fail the action itself."""
        if not task.action_id or (task.action == "delete" and done and error is None):
            return  # a finished delete took the log with the server
        try:
            if done:
                await self.actions.event_finished(task.action_id, event, error)
            else:
                await self.actions.event_started(task.action_id, event)
        except Exception:  # noqa: BLE001
            log.warning("instance action log write failed", exc_info=True,
                        extra={"instance": task.instance_id, "action": task.action})

    async def _fail(self, task: Task, exc: BaseException) -> None:
        inst = self.instances.get(task.instance_id)
        if inst is None or task.instance_id in self._abort and task.action != "delete":
            with contextlib.suppress(Exception):
                await self.tasks.delete(task.id) if inst is None else None
            return
        inst.fault = fault_of(exc)
        inst.task_state = None
        if task.action in ("build", "delete", "rebuild"):
            if task.action == "build":
                await self.build.cleanup_resources(inst, keep_record=True)
                inst.claim = inst.old_claim = None
                inst.pinned_cpus = []
            inst.vm_state = VmState.ERROR
            inst.power_state = await self.power_of(inst.id)
        else:
            await self._settle(inst)
        await self.save(inst, finishing=task, deleting=True)

    # compute/progress.py's Conductor, as reconciliation drives the queue

    def busy(self, instance_id: str) -> bool:
        return instance_id in self._running

    def take_over(self, instance_id: str) -> None:
        self._abort.add(instance_id)

    def redrive(self, task: Task) -> None:
        self._launch(task)

    async def fail(self, task: Task, exc: BaseException) -> None:
        await self._fail(task, exc)

    async def settle(self, inst: Instance) -> None:
        await self._settle(inst)

    async def power_of(self, instance_id: str, *, observed: bool = False) -> PowerState:
        """`observed`: the caller records what it learns, so an unreachable hypervisor must
        not read as "no domain" (a libvirtd restart would turn running guests off on paper)."""
        try:
            return POWER[await self.driver.state(instance_id)]
        except NotFound:
            return PowerState.NOSTATE
        except ServiceUnavailable:
            if observed:
                raise
            return PowerState.NOSTATE
        except MonostackError:
            return PowerState.NOSTATE

    async def _settle(self, inst: Instance) -> None:
        """Idle state = what the hypervisor says (after a failed or interrupted action)."""
        inst.task_state = None
        inst.power_state = await self.power_of(inst.id)
        if inst.vm_state in SETTLEABLE and inst.power_state in SETTLE:
            inst.vm_state = SETTLE[inst.power_state]
        elif inst.vm_state in SETTLEABLE and inst.power_state == PowerState.NOSTATE:
            inst.vm_state = VmState.STOPPED if inst.vm_state != VmState.ERROR else inst.vm_state

    # -- public actions --------------------------------------------------------------------

    async def delete(self, instance_id: str) -> None:
        async with self._admission():
            inst = self.instances.require(instance_id)
            if inst.task_state == TaskState.DELETING and instance_id in self._running:
                return
            self._abort.add(instance_id)
            inst.task_state = TaskState.DELETING
            ops, action_id = self.actions.begin_ops(inst.id, inst.project_id, "delete")
            task = Task(id=inst.id, instance_id=inst.id, action="delete", action_id=action_id)
            await self.save(inst, self.tasks.put_op(task), *ops, deleting=True)
            previous = self._running.get(instance_id)
            if previous is not None and instance_id in self.build.spawning:
                # stuck in libvirt: stop waiting for it; a define landing later is swept
                previous.cancel()
        self._launch(task, after=previous)

    async def start_instance(self, iid: str) -> None:
        await self._admit(iid, "start", TaskState.POWERING_ON, {VmState.STOPPED})

    async def stop_instance(self, iid: str) -> None:
        await self._admit(iid, "stop", TaskState.POWERING_OFF,
                          {VmState.ACTIVE, VmState.ERROR, VmState.PAUSED, VmState.SUSPENDED,
                           VmState.RESCUED})

    async def reboot(self, iid: str, hard: bool) -> None:
        allowed = {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED,
                   VmState.ERROR} if hard else {VmState.ACTIVE}
        await self._admit(iid, "reboot", TaskState.REBOOTING_HARD if hard else TaskState.REBOOTING,
                          allowed, {"hard": hard})

    async def pause(self, iid: str) -> None:
        await self._admit(iid, "pause", TaskState.PAUSING, {VmState.ACTIVE})

    async def unpause(self, iid: str) -> None:
        await self._admit(iid, "unpause", TaskState.UNPAUSING, {VmState.PAUSED})

    async def suspend(self, iid: str) -> None:
        await self._admit(iid, "suspend", TaskState.SUSPENDING, {VmState.ACTIVE, VmState.PAUSED})

    async def resume(self, iid: str) -> None:
        await self._admit(iid, "resume", TaskState.RESUMING, {VmState.SUSPENDED})

    async def resize(self, iid: str, flavor: FlavorSnapshot) -> None:
        await self._admit_growing(iid, flavor, "resize", TaskState.RESIZE_PREP,
                                  {VmState.ACTIVE, VmState.STOPPED}, resize_params(flavor),
                                  lambda inst: check_resize(inst, flavor))

    async def _admit_growing(self, iid: str, flavor: FlavorSnapshot, action: str,
                             task_state: TaskState, allowed: set[VmState],
                             params: dict[str, Any] | None = None,
                             check: Callable[[Instance], None] | None = None) -> None:
        """Admit an action that gives the instance `flavor`: the cores and ram it grows by
        are reserved first and held until the task has stored the flavor (or failed)."""
        inst = self.instances.require(iid)
        held = await self.ctx.quotas.reserve(inst.project_id, {
            "cores": flavor.vcpus - inst.flavor.vcpus, "ram": flavor.ram - inst.flavor.ram})
        try:
            t = await self._admit(iid, action, task_state, allowed, params, check)
        except BaseException:
            held.release()
            raise
        t.add_done_callback(lambda _: held.commit())

    async def confirm_resize(self, iid: str) -> None:
        await self._admit(iid, "confirm_resize", TaskState.RESIZE_CONFIRMING, {VmState.RESIZED})

    async def revert_resize(self, iid: str) -> None:
        inst = self.instances.require(iid)  # back to the old flavor: it may grow again
        await self._admit_growing(iid, inst.old_flavor or inst.flavor, "revert_resize",
                                  TaskState.RESIZE_REVERTING, {VmState.RESIZED})

    async def rebuild(self, iid: str, image_id: str, name: str | None,
                      metadata: dict[str, str] | None) -> None:
        await self._admit(iid, "rebuild", TaskState.REBUILDING,
                          {VmState.ACTIVE, VmState.STOPPED, VmState.ERROR},
                          {"image_id": image_id, "name": name, "metadata": metadata})

    async def rescue(self, iid: str, image_id: str | None) -> None:
        await self._admit(iid, "rescue", TaskState.RESCUING, {VmState.ACTIVE, VmState.STOPPED},
                          {"image_id": image_id})

    async def unrescue(self, iid: str) -> None:
        await self._admit(iid, "unrescue", TaskState.UNRESCUING, {VmState.RESCUED})

    async def create_image(self, iid: str, name: str, metadata: dict[str, str]) -> str:
        image = self.images
        if image is None:
            raise BadRequest("No image service is running: snapshots cannot be stored.")
        inst = self.instances.require(iid)
        if inst.root_volume_id is not None:
            raise BadRequest("Snapshots of volume-backed instances are not supported.")
        t = await self._admit(iid, "snapshot", TaskState.IMAGE_SNAPSHOT,
                              {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED,
                               VmState.SUSPENDED},
                              {"name": name, "metadata": metadata})
        return await asyncio.shield(t)

    async def attach_volume(self, iid: str, volume_id: str, device: str | None
                            ) -> VolumeAttachment:
        if self.volumes is None:
            raise BadRequest("No volume service is running.")
        t = await self._admit(iid, "attach_volume", TaskState.BLOCK_DEVICE_MAPPING,
                              {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED},
                              {"volume_id": volume_id, "device": device})
        return await asyncio.shield(t)

    async def detach_volume(self, iid: str, volume_id: str) -> None:
        inst = self.instances.require(iid)
        if not any(a.volume_id == volume_id for a in inst.volume_attachments):
            raise NotFound(f"volume {volume_id} is not attached to instance {iid}")
        if volume_id == inst.root_volume_id:
            raise BadRequest("Cannot detach a root device volume")
        t = await self._admit(iid, "detach_volume", TaskState.BLOCK_DEVICE_MAPPING,
                              {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED},
                              {"volume_id": volume_id})
        await asyncio.shield(t)

    async def attach_interface(self, iid: str, request: dict[str, Any]) -> PortBinding:
        if self.network is None:
            raise BadRequest("No network service is running.")
        t = await self._admit(iid, "attach_interface", TaskState.NETWORKING,
                              {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED},
                              {"request": request})
        return await asyncio.shield(t)

    async def detach_interface(self, iid: str, port_id: str) -> None:
        inst = self.instances.require(iid)
        if not any(p.port_id == port_id for p in inst.ports):
            raise NotFound(f"port {port_id} is not attached to instance {iid}")
        t = await self._admit(iid, "detach_interface", TaskState.NETWORKING,
                              {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED},
                              {"port_id": port_id})
        await asyncio.shield(t)

    async def set_locked(self, iid: str, locked: bool, reason: str | None = None) -> None:
        async with self._admission():
            inst = self.instances.require(iid)
            inst.locked, inst.locked_reason = locked, (reason if locked else None)
            ops, _ = self.actions.begin_ops(inst.id, inst.project_id,
                                          "lock" if locked else "unlock")
            await self.save(inst, *ops, deleting=True)

    async def change_security_group(self, iid: str, *, add: str | None = None,
                                    remove: str | None = None) -> list[str]:
        """add/removeSecurityGroup: the network component changes the ports (and so the
        firewall); the instance record keeps the names its view shows."""
        net = self.network
        if net is None:
            raise BadRequest("The network service is not running: no security groups.")
        inst = self.instances.require(iid)
        names = await net.change_instance_security_group(inst.id, inst.project_id,
                                                         add=add, remove=remove)
        async with self._admission():
            inst = self.instances.require(iid)
            inst.security_groups = names
            await self.save(inst, deleting=True)
        return names

    async def update(self, iid: str, changes: dict[str, Any]) -> Instance:
        async with self._admission():
            inst = self.instances.require(iid)
            for k, v in changes.items():
                setattr(inst, k, v)
            await self.save(inst, deleting=True)
            return inst

    # -- console --------------------------------------------------------------------------

    def console_log_paths(self, iid: str) -> list[Path]:
        log_path = disks.instance_dir(self.instances_dir, iid) / "console.log"
        rotated = [Path(f"{log_path}.{n}") for n in (2, 1, 0)]
        return [*rotated, log_path]

    async def console_output(self, iid: str, length: int | None) -> str:
        self.instances.require(iid)
        data = await asyncio.to_thread(disks.tail_file, self.console_log_paths(iid),
                                       CONSOLE_TAIL_BYTES)
        text = data.decode("utf-8", errors="replace")
        if length is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-length:]) if length > 0 else ""
        return text

    # -- the build pipeline (compute/build.py) and delete -------------------------------------

    def domain_spec(self, inst: Instance, *, rescue: bool = False) -> DomainSpec:
        return self.build.domain_spec(inst, rescue=rescue)

    async def _do_delete(self, task: Task) -> None:
        inst = self.instances.get(task.instance_id)
        if inst is None:
            await self.tasks.delete(task.id)
            return
        await self.releases.release(inst)
        await self.store.commit([self.instances.delete_op(inst.id), self.tasks.delete_op(task.id),
                                 *self.actions.forget_ops(inst.id),
                                 *self.passwords.forget_op(inst.id)])
        assert self.scheduler is not None
        self.scheduler.forget(inst.id)
        self._abort.discard(inst.id)
        self._statuses.pop(inst.id, None)
        await self.ctx.events.publish("instance.deleted", "instance", inst.id, inst.project_id,
                                      f"{inst.name}: deleted")

    # -- reconciliation, orphans and power sync: compute/reconcile.py --------------------------

    async def reconcile(self) -> None:
        await self.reconciler.reconcile()

    async def sweep_orphans(self) -> int:
        """Remove domains this appliance defined whose server is gone; how many."""
        return await self.reconciler.sweep_orphans()

    async def sync_power_states(self) -> None:
        await self.reconciler.sync_power_states()

    @property
    def orphans(self) -> list[str]:
        """Domains libvirt has that are not this appliance's (found by the last reconcile)."""
        return self.reconciler.orphans
