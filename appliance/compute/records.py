"""Compute records: flavors, key pairs, instances and the durable task queue's tasks.

States follow Nova's three axes so the real clients read them unchanged:

- `vm_state`: where the instance is at rest (building, active, stopped …),
- `task_state`: what is being done to it right now (None when idle) — the one-task-per-instance
  rule is "task_state is None before a new action may start",
- `power_state`: what the hypervisor last said (Nova's integers, shown as OS-EXT-STS:power_state).

The API `status` is derived from vm_state + task_state exactly as Nova's
`nova/api/openstack/common.py` state map does.

Claims live inside the instance record (`claim`, `old_claim` during a resize), so a claim is
persisted in the same store transaction as the state change that took it, and the scheduler's
usage is recomputed from instance records at startup: a claim cannot leak past a restart.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from appliance.compute.scheduler.host import Claim
from appliance.seams import PortBinding


class VmState(enum.StrEnum):
    BUILDING = "building"
    ACTIVE = "active"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    RESIZED = "resized"
    RESCUED = "rescued"
    ERROR = "error"
    DELETED = "deleted"


class TaskState(enum.StrEnum):
    SCHEDULING = "scheduling"
    NETWORKING = "networking"
    BLOCK_DEVICE_MAPPING = "block_device_mapping"
    SPAWNING = "spawning"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    RESIZE_PREP = "resize_prep"
    RESIZE_MIGRATING = "resize_migrating"
    RESIZE_FINISH = "resize_finish"
    RESIZE_CONFIRMING = "resize_confirming"
    RESIZE_REVERTING = "resize_reverting"
    REBUILDING = "rebuilding"
    RESCUING = "rescuing"
    UNRESCUING = "unrescuing"
    IMAGE_SNAPSHOT = "image_snapshot"
    DELETING = "deleting"


class PowerState(enum.IntEnum):
    """Nova's power_state integers (nova/compute/power_state.py)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


_REBOOT = {TaskState.REBOOTING: "REBOOT", TaskState.REBOOTING_HARD: "HARD_REBOOT"}
_RESIZE = {TaskState.RESIZE_PREP, TaskState.RESIZE_MIGRATING, TaskState.RESIZE_FINISH}


def derive_status(vm_state: VmState, task_state: TaskState | None) -> str:
    """The API `status` (Nova's _STATE_MAP)."""
    if vm_state == VmState.BUILDING:
        return "BUILD"
    if task_state in _RESIZE and vm_state in (VmState.ACTIVE, VmState.STOPPED):
        return "RESIZE"
    if task_state == TaskState.REBUILDING and vm_state in (VmState.ACTIVE, VmState.STOPPED,
                                                           VmState.ERROR):
        return "REBUILD"
    if vm_state == VmState.ACTIVE:
        return _REBOOT.get(task_state, "ACTIVE") if task_state else "ACTIVE"
    if vm_state == VmState.RESIZED:
        return "REVERT_RESIZE" if task_state == TaskState.RESIZE_REVERTING else "VERIFY_RESIZE"
    return {VmState.STOPPED: "SHUTOFF", VmState.PAUSED: "PAUSED",
            VmState.SUSPENDED: "SUSPENDED", VmState.RESCUED: "RESCUE", VmState.ERROR: "ERROR",
            VmState.DELETED: "DELETED"}.get(vm_state, "UNKNOWN")


def now() -> float:
    return time.time()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB, 0 = the image's size
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    description: str | None = None
    rxtx_factor: float = 1.0
    extra_specs: dict[str, str] = field(default_factory=dict)
    #: projects that may use a private flavor
    projects: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=now)

    def snapshot(self) -> FlavorSnapshot:
        """What an instance keeps of its flavor (the flavor may later be deleted)."""
        return FlavorSnapshot(id=self.id, name=self.name, vcpus=self.vcpus, ram=self.ram,
                              disk=self.disk, ephemeral=self.ephemeral, swap=self.swap,
                              extra_specs=dict(self.extra_specs))


@dataclass(frozen=True)
class FlavorSnapshot:
    """What an instance keeps of its flavor, as it was when the instance got it (the flavor
    may later be changed or deleted; Nova embeds the same in a server since 2.47)."""

    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB, 0 = the image's size
    ephemeral: int = 0
    swap: int = 0
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass
class KeyPair:
    """Stored per user: `id` is "<user_id>/<name>" so names are unique per user."""

    id: str
    name: str
    user_id: str
    public_key: str
    fingerprint: str
    type: str = "ssh"
    created_at: float = field(default_factory=now)


@dataclass(frozen=True)
class VolumeAttachment:
    """A volume attached to an instance: the disk its domain is given (path, format) at the
    target `device` names. `boot`: the root volume (always vda)."""

    id: str
    volume_id: str
    device: str
    path: str = ""
    format: str = "raw"
    boot: bool = False
    #: a boot volume made for the instance goes with it (block_device_mapping_v2)
    delete_on_termination: bool = False

    @property
    def target(self) -> str:
        """The guest's disk name: "vdb" of "/dev/vdb"."""
        return self.device.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Fault:
    """The last failure of an instance, as a server shows it (Nova's instance fault)."""

    code: int = 500
    message: str = ""
    details: str = ""
    created: float | None = None


@dataclass
class Instance:
    id: str
    name: str
    project_id: str
    user_id: str
    #: the flavor it runs with
    flavor: FlavorSnapshot
    image_id: str | None = None
    #: boot-from-volume: the root volume's id (image_id is then None)
    root_volume_id: str | None = None
    key_name: str | None = None
    key_data: str | None = None
    vm_state: VmState = VmState.BUILDING
    task_state: TaskState | None = TaskState.SCHEDULING
    power_state: PowerState = PowerState.NOSTATE
    #: {network_name: [{"version", "addr", "OS-EXT-IPS:type", "OS-EXT-IPS-MAC:mac_addr"}]}
    addresses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the ports the network component bound to it, in NIC order
    ports: list[PortBinding] = field(default_factory=list)
    requested_networks: list[dict[str, Any]] = field(default_factory=list)
    #: the last failure (None once an action succeeds anew)
    fault: Fault | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    config_drive: bool = False
    user_data: str | None = None  # base64, as the API received it
    locked: bool = False
    locked_reason: str | None = None
    host: str | None = None
    availability_zone: str = "nova"
    description: str | None = None
    access_ipv4: str = ""
    access_ipv6: str = ""
    security_groups: list[str] = field(default_factory=lambda: ["default"])
    volume_attachments: list[VolumeAttachment] = field(default_factory=list)
    created_at: float = field(default_factory=now)
    updated_at: float = field(default_factory=now)
    launched_at: float | None = None
    terminated_at: float | None = None
    #: host pCPUs this instance's vCPUs are pinned to (hw:cpu_policy=dedicated)
    pinned_cpus: list[int] = field(default_factory=list)
    #: the host resources held while the instance uses them (stored as Claim.to_dict())
    claim: Claim | None = None
    #: during a resize: the claim of the old flavor (revert needs it back)
    old_claim: Claim | None = None
    old_flavor: FlavorSnapshot | None = None
    #: the power state to return to after resize/rebuild/unrescue
    resume_running: bool = True
    server_group_id: str | None = None
    launch_index: int = 0
    reservation_id: str = ""
    hostname: str = ""

    @property
    def status(self) -> str:
        return derive_status(self.vm_state, self.task_state)

    def touch(self) -> None:
        self.updated_at = now()


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"


@dataclass
class Task:
    """A unit of work for the conductor, durable until finished.

    Written in the same transaction as the instance's task_state change that it carries out and
    deleted in the same transaction as the instance's final state, so after a crash every
    surviving Task names an action that did not finish; startup reconciliation re-drives or
    fails it."""

    id: str
    instance_id: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    status: TaskStatus = TaskStatus.QUEUED
    created_at: float = field(default_factory=now)
    started_at: float | None = None
    attempts: int = 0
    #: the instance action (compute/actions.py) this task carries out
    action_id: str = ""


@dataclass
class QuotaSet:
    """Per-project limits (id = project id); missing values use DEFAULT_QUOTAS."""

    id: str
    limits: dict[str, int] = field(default_factory=dict)


DEFAULT_QUOTAS: dict[str, int] = {
    "instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "metadata_items": 128,
    "server_groups": 10, "server_group_members": 10, "injected_files": 5,
    "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
}


@dataclass
class ServerGroup:
    id: str
    name: str
    project_id: str
    user_id: str
    policy: str = "anti-affinity"
    members: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=now)
