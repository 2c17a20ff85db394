"""What the components ask of each other: the records that cross and one Protocol per component.

This module is neutral ground: it imports no component, so images, volumes, network and
compute can all depend on it without depending on each other. `appliance/service.py` hands each
component the others it needs through its constructor, typed by these Protocols; a component
that is not running is handed in as None (an appliance run with `components = ["compute"]`
boots without NICs, and booting from an image is then a clear 400).

Who uses what:

    compute  → ImageSeam (boot sources, snapshots), VolumeSeam (root and attached volumes),
               NetworkSeam (ports, plugging taps, network_data for the config drive)
    volumes  → ImageSeam (volumes from images, upload to image)
    network  → ComputeForNetwork (DHCP host names, metadata documents), asked through a
               provider: compute is built after network, and may not run at all

The records crossing are frozen dataclasses, defined once here; never dicts of dicts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class BootImage:
    """A local file qemu can read as a backing file, and what the image says about itself."""

    path: Path
    disk_format: str  # qemu driver name: "qcow2" | "raw" | "vmdk" | "vpc" | "vhdx"
    min_disk: int = 0  # GiB
    min_ram: int = 0  # MiB
    #: image properties: architecture, hypervisor_type, hw_* …
    properties: dict[str, Any] = field(default_factory=dict)
    #: virtual size in bytes when the image service knows it (else compute asks qemu-img)
    virtual_size: int | None = None
    name: str = ""


@dataclass(frozen=True)
class ReservedImage:
    """A queued image record made for an upload from a file (volume → image)."""

    id: str
    name: str
    disk_format: str
    container_format: str


@dataclass(frozen=True)
class AttachableVolume:
    """A volume file compute can hand to libvirt."""

    path: Path
    format: str  # libvirt driver type: "qcow2" | "raw"
    size_gb: int = 0


@dataclass(frozen=True)
class PortBinding:
    """A port bound to an instance; compute keeps these in the instance record."""

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


class ImageSeam(Protocol):
    """The image component, as compute and volumes use it."""

    async def boot_source(self, image_id: str, project_id: str) -> BootImage:
        """The cached local file of an active image the project may use.
        Raises NotFound (no such image / not visible) or Conflict (not active yet)."""
        ...

    async def create_image_from_file(self, *, name: str, project_id: str, path: Path,
                                     disk_format: str,
                                     properties: dict[str, Any] | None = None) -> str:
        """Register `path` (a finished qcow2/raw file) as a new private image of the project;
        its id. Verified like an upload (Invalid on a refused image); on failure none remains."""
        ...

    async def reserve_image(self, *, name: str, project_id: str, disk_format: str,
                            container_format: str = "bare", visibility: str = "private",
                            protected: bool = False,
                            properties: dict[str, Any] | None = None) -> ReservedImage:
        """A queued image record of the project (id known at once); fill it with
        upload_from_file."""
        ...

    async def upload_from_file(self, image_id: str, path: Path) -> None:
        """The data of a reserved image, from a local file (verified like an upload)."""
        ...


class VolumeSeam(Protocol):
    """The volume component, as compute uses it."""

    async def volume_for_attach(self, volume_id: str, project_id: str) -> AttachableVolume:
        """available → attaching; the file to attach. Raises NotFound, or Conflict when the
        volume is not available. Follow with mark_attached, or mark_detached to roll back."""
        ...

    async def mark_attached(self, volume_id: str, instance_id: str, device: str) -> None:
        """attaching → in-use, with an attachment record for the instance."""
        ...

    async def mark_detached(self, volume_id: str, instance_id: str | None = None) -> None:
        """Drop the instance's attachment (all when None) → available. Idempotent."""
        ...

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


class NetworkSeam(Protocol):
    """The network component, as compute uses it."""

    async def settled(self) -> None:
        """Until the data plane is built at start (guests are started and plugged after)."""
        ...

    def check_requested_networks(self, project_id: str,
                                 requested_networks: list[dict[str, Any]]) -> None:
        """What allocate_ports would refuse, said before a build starts: NotFound for unknown
        or foreign networks and ports, Conflict for a port bound elsewhere."""
        ...

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

    async def deallocate_port(self, port_id: str) -> None:
        """Release one port (interface detach): deleted if compute made it, else unbound."""
        ...

    async def network_data(self, instance_id: str) -> dict[str, Any]:
        """network_data.json for the instance's config drive (OpenStack's format)."""
        ...


class ComputeForNetwork(Protocol):
    """What network asks of compute about the instances its ports serve: the host name a DHCP
    lease carries, and the metadata service's documents and password file."""

    def instance_hostname(self, instance_id: str) -> str | None:
        """The instance's DNS host name, or None if it is unknown."""
        ...

    def instance_metadata(self, instance_id: str) -> Any:
        """The metadata documents of a live instance (ConfigDriveContent), or None for an
        unknown one or one being deleted."""
        ...

    async def set_instance_password(self, instance_id: str, value: str) -> bool:
        """The guest's one POST to its password file; False once one is set."""
        ...
