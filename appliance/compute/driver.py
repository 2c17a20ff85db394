"""The compute driver seam: typed records and the `ComputeDriver` Protocol.

Everything above this module (manager, conductor, scheduler, console proxy) talks to a hypervisor
only through these verbs and records, so the same code runs over real libvirt (`qemu:///system`)
and over libvirt's `test:///default` in fast tests. Nothing here imports libvirt.

Duties every driver has (after Nova's virt driver contract, without its size):

- Verbs are coroutines and never block the event loop.
- `spawn` either leaves a running domain or nothing at all: on any failure the partial domain
  (defined config, managed-save image, started process) is removed before the error is raised.
- Errors are `appliance.errors` classes: `NotFound` (no such domain), `Conflict` (the domain is
  not in a state that allows the verb), `Invalid` (a spec that can never work, e.g. a name with
  characters XML cannot carry), `HypervisorError` (libvirt/qemu failed),
  `ServiceUnavailable` (the capability is not offered by this driver — check `capabilities`).
- What a driver can do is declared in `DriverCapabilities`, not discovered by catching errors.
"""
from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: XML namespace of our `<metadata>` element in every domain we define.
METADATA_NAMESPACE = "https://monostack.dev/xmlns/instance/1"
METADATA_PREFIX = "monostack"


class HypervisorType(enum.StrEnum):
    """What actually runs guests: KVM only when a guest really runs under it (detected)."""

    KVM = "kvm"
    QEMU = "qemu"  # TCG emulation
    TEST = "test"  # libvirt's test:///default, no guests at all


class DomainState(enum.StrEnum):
    """Power state as Nova sees it. `suspended` is OpenStack's suspend: memory saved to disk
    (libvirt managed save) and no process; `paused` keeps the process, vCPUs stopped."""

    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    SUSPENDED = "suspended"
    CRASHED = "crashed"
    NOSTATE = "nostate"


class DiskDevice(enum.StrEnum):
    DISK = "disk"
    CDROM = "cdrom"


class DiskBus(enum.StrEnum):
    VIRTIO = "virtio"
    SATA = "sata"  # cdroms (config drive, rescue ISO) cannot sit on virtio-blk
    #: cdroms on the i440fx machine (what Nova uses for config drives; guests with only
    #: ata_piix, like the test guest, find them here and not on AHCI)
    IDE = "ide"
    SCSI = "scsi"


class DiskFormat(enum.StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"


class DiskCache(enum.StrEnum):
    """Host page-cache mode. `none` (O_DIRECT, guest flushes reach the disk) is the default for
    anything that must survive a host crash; `writeback` is still crash-safe for guests that
    issue flushes (qemu honours them) and works on filesystems without O_DIRECT (tmpfs).
    `unsafe` (ignores guest flushes) is deliberately not offered: a volume must never lose
    data the guest believes is on disk."""

    NONE = "none"
    WRITEBACK = "writeback"


@dataclass(frozen=True)
class DiskSpec:
    path: str
    format: DiskFormat = DiskFormat.QCOW2
    target: str = "vda"
    bus: DiskBus = DiskBus.VIRTIO
    device: DiskDevice = DiskDevice.DISK
    readonly: bool = False
    cache: DiskCache = DiskCache.NONE
    #: Shown to the guest as the disk serial (Nova puts the volume id here, /dev/disk/by-id).
    serial: str | None = None


@dataclass(frozen=True)
class NicSpec:
    mac: str
    tap_name: str
    mtu: int | None = None
    model: str = "virtio"
    #: False: libvirt creates the tap on every start (network plugs it after start).
    #: True: the network component created it; libvirt opens it (`managed='no'`).
    precreated_tap: bool = False


@dataclass(frozen=True)
class GuestNumaCell:
    """One guest NUMA node: which guest vCPUs and how much memory, and (optionally) which host
    node backs its memory (`<numatune><memnode>`)."""

    id: int
    vcpus: tuple[int, ...]
    memory_mib: int
    host_node: int | None = None


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel/initrd from host files instead of the disk (rescue images, tests)."""

    kernel: str
    initrd: str | None = None
    cmdline: str = ""


@dataclass
class DomainSpec:
    """Everything needed to define one guest. The domain UUID is the instance UUID."""

    uuid: str
    name: str
    vcpus: int
    memory_mib: int
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    #: cpu_pinning[i] = host pCPUs vCPU i may run on (dedicated CPU policy); None = float.
    cpu_pinning: list[list[int]] | None = None
    numa_cells: list[GuestNumaCell] | None = None
    #: Our own key/value record (project, flavor, display name ...), stored in the domain's
    #: <metadata> under METADATA_NAMESPACE so reconciliation can read it back from libvirt.
    metadata: dict[str, str] = field(default_factory=dict)
    #: File the serial console output is appended to (virtlogd; survives restarts).
    console_log_path: str | None = None
    #: Disk targets in boot order (rescue: ["vdb", "vda"] boots the rescue disk first).
    #: Empty: the first disk boots.
    boot_order: list[str] = field(default_factory=list)
    direct_boot: DirectBoot | None = None


@dataclass(frozen=True)
class HostNumaCell:
    id: int
    cpus: tuple[int, ...]
    memory_mib: int


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    arch: str
    cpus: int
    memory_mib: int
    numa_cells: tuple[HostNumaCell, ...]
    hypervisor_type: HypervisorType
    #: "9.0.0" style strings, for os-hypervisors.
    libvirt_version: str
    hypervisor_version: str
    cpu_model: str = ""


@dataclass(frozen=True)
class DomainStats:
    cpu_time_ns: int
    memory_actual_kib: int
    memory_rss_kib: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int


@dataclass(frozen=True)
class HostUsage:
    """Live host load for the operator's sparklines (not the scheduler's allocations).

    `cpu_percent` is busy time over all host CPUs since the previous sample (None when the
    driver cannot tell, e.g. the test driver's frozen counters); memory is what the kernel
    reports in use, without buffers and page cache (None when unsupported)."""

    cpu_percent: float | None
    memory_total_kib: int
    memory_used_kib: int | None


@dataclass(frozen=True)
class DomainSummary:
    uuid: str
    name: str
    state: DomainState
    metadata: dict[str, str]


class LifecycleEventKind(enum.StrEnum):
    DEFINED = "defined"
    UNDEFINED = "undefined"
    STARTED = "started"
    SUSPENDED = "suspended"  # libvirt's word: vCPUs paused (our PAUSED); detail says why
    RESUMED = "resumed"
    STOPPED = "stopped"  # process gone; detail: shutdown, destroyed, crashed, saved, failed
    SHUTDOWN = "shutdown"  # guest-initiated shutdown in progress/finished
    PMSUSPENDED = "pmsuspended"
    CRASHED = "crashed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class LifecycleEvent:
    uuid: str
    event: LifecycleEventKind
    detail: str


@dataclass(frozen=True)
class DriverCapabilities:
    """What this driver offers; callers check these instead of catching errors."""

    supports_pause: bool = True
    supports_suspend: bool = True
    supports_hotplug_disk: bool = True
    supports_hotplug_nic: bool = True
    #: snapshot of a stopped domain's root disk
    supports_snapshot: bool = True
    #: snapshot while the domain runs (libvirt push backup), no downtime
    supports_live_snapshot: bool = True
    supports_serial_console: bool = True
    #: console output kept in a log file (virtlogd) for os-getConsoleOutput
    supports_console_log: bool = True
    supports_cpu_pinning: bool = True
    supports_numa: bool = True
    supports_direct_boot: bool = True
    supports_lifecycle_events: bool = True
    #: guests really run (false for the test driver: no disk I/O, no console, fake stats)
    runs_guests: bool = True
    #: the guest sees the host's own CPU model and flags (host-passthrough); only with
    #: hardware virtualisation — TCG emulates a generic CPU
    supports_host_cpu: bool = True


@dataclass(frozen=True)
class SnapshotResult:
    path: str
    format: DiskFormat
    size_bytes: int
    live: bool


class ConsoleStream(Protocol):
    """A bidirectional byte stream to a guest's serial console."""

    async def read(self) -> bytes:
        """Next chunk of console output; b"" once the stream ended (guest stopped, forced off
        by another client, or closed)."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class ComputeDriver(Protocol):
    """The hypervisor verbs. Domains are addressed by instance UUID."""

    @property
    def capabilities(self) -> DriverCapabilities: ...

    # Called (on the event loop) after a lost connection was made again: lifecycle events of
    # the gap are gone, so the owner re-reads power states.
    on_reconnect: Callable[[], None] | None

    @property
    def connected(self) -> bool:
        """False while the hypervisor connection is lost and being re-made (calls answer
        ServiceUnavailable meanwhile)."""
        ...

    async def connect(self) -> None:
        """Open the hypervisor connection and detect the domain type. Idempotent; once
        called, a connection that dies is re-made in the background until `close`."""
        ...

    async def close(self) -> None: ...

    async def detect_domain_type(self) -> HypervisorType: ...

    async def host_info(self) -> HostInfo: ...

    async def spawn(self, spec: DomainSpec) -> None:
        """Define and start. On failure nothing is left behind (no definition, no process)."""
        ...

    async def destroy(self, uuid: str, undefine: bool = True) -> None:
        """Stop hard and (by default) forget the definition. Idempotent: a missing domain is
        not an error (a half-finished delete must be finishable)."""
        ...

    async def power_on(self, uuid: str) -> None: ...

    async def power_off(self, uuid: str, graceful: bool = True, timeout: float = 60.0) -> bool:
        """ACPI shutdown, waiting up to `timeout`, then hard stop if still running.
        Returns True when the guest shut down by itself."""
        ...

    async def reboot(self, uuid: str, hard: bool = False, timeout: float = 60.0) -> None:
        """Soft: graceful power off (hard after `timeout`) then start. Hard: stop and start."""
        ...

    async def pause(self, uuid: str) -> None: ...

    async def unpause(self, uuid: str) -> None: ...

    async def suspend(self, uuid: str) -> None:
        """OpenStack suspend: memory to disk (managed save), process gone."""
        ...

    async def resume(self, uuid: str) -> None: ...

    async def snapshot_disk(self, uuid: str, dest_path: str,
                            format: DiskFormat = DiskFormat.QCOW2,
                            target: str = "vda") -> SnapshotResult:
        """Write a standalone (flattened) copy of the root disk to dest_path for the image
        service. Running domains are copied live when supported, else refused with Conflict."""
        ...

    async def attach_disk(self, uuid: str, disk: DiskSpec) -> None: ...

    async def detach_disk(self, uuid: str, target: str) -> None:
        """Returns once the guest released the device (HypervisorError if it never does)."""
        ...

    async def attach_nic(self, uuid: str, nic: NicSpec) -> None: ...

    async def detach_nic(self, uuid: str, mac: str) -> None: ...

    async def console_stream(self, uuid: str, force: bool = True) -> ConsoleStream:
        """Open the serial console. force=True takes it over from another client (whose stream
        then ends); force=False fails with Conflict if someone holds it. One stream per domain:
        fan-out to several watchers belongs to the console proxy above the driver."""
        ...

    async def state(self, uuid: str) -> DomainState: ...

    async def stats(self, uuid: str) -> DomainStats: ...

    async def host_usage(self) -> HostUsage:
        """Host CPU busy % (since the previous call) and memory in use, read live."""
        ...

    async def list_domains(self) -> list[DomainSummary]: ...

    def events(self) -> AsyncIterator[LifecycleEvent]:
        """Lifecycle events of every domain, from the moment of the call, until close()."""
        ...
