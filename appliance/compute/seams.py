"""What compute needs from the image, volume and network components: small Protocols.

Compute looks each one up in `ctx.components` by name when it needs it. Any may be missing
(an appliance run with `components = ["compute"]`): then booting from an image is a clear 400,
volumes cannot be attached, and instances boot without NICs. The records crossing these seams
are dataclasses, never dicts of dicts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class BootImage:
    """A local file qemu can read as a backing file, and what the image says about itself."""

    path: Path
    disk_format: str  # "qcow2" | "raw"
    min_disk: int = 0  # GiB
    min_ram: int = 0  # MiB
    #: image properties: architecture, hypervisor_type, hw_* …
    properties: dict[str, Any] = field(default_factory=dict)
    #: virtual size in bytes when the image service knows it (else compute asks qemu-img)
    virtual_size: int | None = None
    name: str = ""


@dataclass(frozen=True)
class AttachableVolume:
    path: Path
    format: str  # "qcow2" | "raw"
    size_gb: int = 0


@dataclass(frozen=True)
class PortBinding:
    port_id: str
    network_id: str
    network_name: str
    mac: str
    tap_name: str
    mtu: int | None = None
    fixed_ips: list[str] = field(default_factory=list)
    #: the tap is created by the network component (libvirt then opens it, managed='no')
    precreated_tap: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PortBinding":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class GroupRule:
    """An ingress rule of a security group, as Nova's os-security-groups shows it."""
    id: str
    protocol: str | None
    from_port: int | None
    to_port: int | None
    cidr: str | None
    remote_group_id: str | None


@dataclass(frozen=True)
class InstanceGroup:
    """A security group the instance's ports hold."""
    id: str
    name: str
    description: str
    project_id: str
    rules: list[GroupRule] = field(default_factory=list)


@runtime_checkable
class ImageSeam(Protocol):
    """The image component (`name = "image"`)."""

    async def boot_source(self, image_id: str, project_id: str) -> BootImage:
        """The cached local file of an active image the project may use.
        Raises NotFound (no such image / not visible) or Conflict (not active yet)."""
        ...

    async def create_image_from_file(self, *, name: str, project_id: str, path: Path,
                                     disk_format: str, properties: dict[str, Any]) -> str:
        """Register `path` (a finished qcow2/raw file compute wrote) as a new image owned by
        the project; returns the new image id. The image service copies or moves the file."""
        ...


@runtime_checkable
class VolumeSeam(Protocol):
    """The volume component (`name = "volume"`)."""

    async def volume_for_attach(self, volume_id: str, project_id: str) -> AttachableVolume:
        """Raises NotFound, or Conflict when the volume is not available/in-use elsewhere."""
        ...

    async def mark_attached(self, volume_id: str, instance_id: str, device: str) -> None: ...

    async def mark_detached(self, volume_id: str) -> None: ...

    async def root_volume_for_boot(self, volume_id: str, project_id: str) -> AttachableVolume:
        """Boot from an existing volume: reserved like an attach (then mark_attached)."""
        ...

    async def begin_boot_volume(self, *, image_id: str, project_id: str,
                                size_gb: int | None, name: str = "") -> str:
        """Boot from image onto a new volume: its id at once (status creating), so compute
        records it before waiting; then wait_available. Raises BadRequest/QuotaExceeded."""
        ...

    async def wait_available(self, volume_id: str, timeout: float = 3600.0) -> None:
        """Until the new volume is built; MonostackError if its build failed."""
        ...

    async def delete_volume(self, volume_id: str, project_id: str) -> None:
        """Delete a detached volume (a root volume with delete_on_termination). Idempotent."""
        ...


@runtime_checkable
class NetworkSeam(Protocol):
    """The network component (`name = "network"`)."""

    async def allocate_ports(self, instance_id: str, project_id: str,
                             requested_networks: list[dict[str, Any]],
                             security_groups: list[str] | None = None) -> list[PortBinding]:
        """Ports for the instance: each request is {"uuid": net} | {"port": port_id} |
        {"fixed_ip": …} as in the Nova API; [] means the project's default network (or none).
        Ports made here hold `security_groups` (names or ids; None: the project's default).
        Idempotent per instance: calling again returns the ports already bound."""
        ...

    async def change_instance_security_group(self, instance_id: str, project_id: str, *,
                                             add: str | None = None,
                                             remove: str | None = None) -> list[str]:
        """Put a group (name or id) on, or take it off, every port of the instance; returns
        the group names its ports now hold. NotFound / Conflict (ambiguous name) / BadRequest
        (already there, not there, port security off, no ports)."""
        ...

    def instance_security_groups(self, instance_id: str) -> list[InstanceGroup]:
        """The groups the instance's ports hold, with their ingress rules."""
        ...

    def floating_addresses(self) -> dict[str, dict[str, list[str]]]:
        """port id → fixed address → the floating addresses NATed to it."""
        ...

    async def plug(self, tap_name: str, port_id: str) -> None:
        """Called after every domain start: move/attach the tap to the data plane."""
        ...

    async def deallocate_ports(self, instance_id: str) -> None:
        """Release every port of the instance. Idempotent."""
        ...


@runtime_checkable
class ComputeSeam(Protocol):
    """What compute offers the other components (`name = "compute"`), so none of them reads
    compute's records directly."""

    def instance_hostname(self, instance_id: str) -> str | None:
        """The instance's DNS host name (for DHCP option 12), or None if it is unknown."""
        ...
