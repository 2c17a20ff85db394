"""What the scheduler decides over: one host's capacity, its usage, and a request.

Capacity comes from the driver's HostInfo (CPUs, NUMA cells, memory) and the instance store's
filesystem (os.statvfs, in a thread); allocation ratios and reserved memory/CPUs from
config.compute. Usage is the sum of the claims held by instance records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class NumaCellUse:
    """One guest NUMA cell placed on one host cell."""

    host_node: int
    vcpus: tuple[int, ...]  # guest vCPU ids
    memory_mb: int
    pcpus: tuple[int, ...] = ()  # host pCPUs when dedicated


class FlavorSizes(Protocol):
    """What a request reads of a flavor (compute/records.py FlavorSnapshot or Flavor)."""

    @property
    def name(self) -> str: ...
    @property
    def vcpus(self) -> int: ...
    @property
    def ram(self) -> int: ...
    @property
    def disk(self) -> int: ...
    @property
    def ephemeral(self) -> int: ...
    @property
    def swap(self) -> int: ...
    @property
    def extra_specs(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Claim:
    """Host resources one instance holds. Stored as a dict inside the instance record."""

    vcpus: int
    ram_mb: int
    disk_gb: int
    pcpus: tuple[int, ...] = ()
    numa: tuple[NumaCellUse, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"vcpus": self.vcpus, "ram_mb": self.ram_mb, "disk_gb": self.disk_gb,
                "pcpus": list(self.pcpus),
                "numa": [{"host_node": c.host_node, "vcpus": list(c.vcpus),
                          "memory_mb": c.memory_mb, "pcpus": list(c.pcpus)} for c in self.numa]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Claim":
        return cls(vcpus=int(d.get("vcpus", 0)), ram_mb=int(d.get("ram_mb", 0)),
                   disk_gb=int(d.get("disk_gb", 0)), pcpus=tuple(d.get("pcpus", ())),
                   numa=tuple(NumaCellUse(host_node=c["host_node"], vcpus=tuple(c["vcpus"]),
                                          memory_mb=c["memory_mb"], pcpus=tuple(c.get("pcpus", ())))
                              for c in d.get("numa", ())))


@dataclass(frozen=True)
class HostCell:
    id: int
    cpus: tuple[int, ...]
    memory_mb: int


@dataclass
class HostState:
    """Capacity and current usage of one compute host."""

    name: str
    arch: str
    hypervisor_type: str
    cpus: int
    memory_mb: int
    disk_gb: int
    cells: tuple[HostCell, ...]
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    reserved_memory_mb: int
    reserved_cpus: int
    enabled: bool = True
    cpu_model: str = ""
    used_vcpus: int = 0
    used_ram_mb: int = 0
    used_disk_gb: int = 0
    pinned: set[int] = field(default_factory=set)
    #: host node -> MiB claimed by NUMA-placed guests
    cell_ram_used: dict[int, int] = field(default_factory=dict)

    # -- capacity -------------------------------------------------------------------------

    @property
    def vcpu_limit(self) -> int:
        return int(max(0, self.cpus - self.reserved_cpus) * self.cpu_allocation_ratio)

    @property
    def ram_limit_mb(self) -> int:
        return int(self.memory_mb * self.ram_allocation_ratio) - self.reserved_memory_mb

    @property
    def disk_limit_gb(self) -> int:
        return int(self.disk_gb * self.disk_allocation_ratio)

    @property
    def free_vcpus(self) -> int:
        return self.vcpu_limit - self.used_vcpus

    @property
    def free_ram_mb(self) -> int:
        return self.ram_limit_mb - self.used_ram_mb

    @property
    def free_disk_gb(self) -> int:
        return self.disk_limit_gb - self.used_disk_gb

    @property
    def reserved_pcpus(self) -> set[int]:
        """The first `reserved_host_cpus` host CPUs are the host's own: never pinned."""
        every = sorted(c for cell in self.cells for c in cell.cpus) or list(range(self.cpus))
        return set(every[:self.reserved_cpus])

    def free_pcpus(self, cell: HostCell) -> list[int]:
        reserved = self.reserved_pcpus
        return [c for c in cell.cpus if c not in reserved and c not in self.pinned]

    def free_cell_ram(self, cell: HostCell) -> int:
        return int(cell.memory_mb * self.ram_allocation_ratio) - self.cell_ram_used.get(cell.id, 0)

    def consume(self, claim: Claim) -> None:
        self.used_vcpus += claim.vcpus
        self.used_ram_mb += claim.ram_mb
        self.used_disk_gb += claim.disk_gb
        self.pinned.update(claim.pcpus)
        for c in claim.numa:
            self.cell_ram_used[c.host_node] = self.cell_ram_used.get(c.host_node, 0) + c.memory_mb


@dataclass(frozen=True)
class RequestSpec:
    """One instance's needs, from its flavor and image."""

    instance_id: str
    flavor_name: str
    vcpus: int
    ram_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    extra_specs: dict[str, str] = field(default_factory=dict)
    image_properties: dict[str, Any] = field(default_factory=dict)
    image_min_ram: int = 0
    image_min_disk: int = 0

    @property
    def disk_gb(self) -> int:
        return self.root_gb + self.ephemeral_gb + (self.swap_mb + 1023) // 1024

    @property
    def dedicated(self) -> bool:
        return self.extra_specs.get("hw:cpu_policy", "shared") == "dedicated"

    @classmethod
    def for_flavor(cls, instance_id: str, flavor: "FlavorSizes",
                   image_properties: dict[str, Any] | None = None, image_min_ram: int = 0,
                   image_min_disk: int = 0, root_gb: int | None = None) -> "RequestSpec":
        return cls(instance_id=instance_id, flavor_name=flavor.name,
                   vcpus=int(flavor.vcpus), ram_mb=int(flavor.ram),
                   root_gb=int(flavor.disk if root_gb is None else root_gb),
                   ephemeral_gb=int(flavor.ephemeral or 0),
                   swap_mb=int(flavor.swap or 0),
                   extra_specs=dict(flavor.extra_specs or {}),
                   image_properties=dict(image_properties or {}),
                   image_min_ram=image_min_ram, image_min_disk=image_min_disk)
