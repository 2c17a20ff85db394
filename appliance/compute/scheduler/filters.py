"""The filter → weigher pipeline: each filter is a small class that admits a host or says why not.

A filter's `refuse(host, spec)` returns None to admit, or a reason; the pipeline turns the
first reason into `NoValidHost("RamFilter: 2048 MiB asked, 1536 free")`. Weighers rank the
admitted hosts (one host today; the pipeline does not care). Placement-producing filters
(pinning, NUMA) record what they chose in the `Placement` handed along, so the claim pins
exactly the pCPUs the filter checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from appliance.compute.scheduler.host import HostState, NumaCellUse, RequestSpec

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "i386": "i686",
                 "i486": "i686", "i586": "i686", "x86": "i686", "arm64": "aarch64"}


def canonical_arch(arch: str) -> str:
    a = str(arch).strip().lower()
    return _ARCH_ALIASES.get(a, a)


@dataclass
class Placement:
    """What placement-aware filters decided for the request on one host."""

    pcpus: list[int] = field(default_factory=list)
    numa: list[NumaCellUse] = field(default_factory=list)


class HostFilter(Protocol):
    name: str

    def refuse(self, host: HostState, spec: RequestSpec, placement: Placement) -> str | None: ...


class ComputeFilter:
    name = "ComputeFilter"

    def refuse(self, host, spec, placement):
        if not host.enabled:
            return f"host {host.name} is disabled"
        return None


class RamFilter:
    name = "RamFilter"

    def refuse(self, host, spec, placement):
        if spec.ram_mb > host.free_ram_mb:
            return f"{spec.ram_mb} MiB asked, {max(0, host.free_ram_mb)} free"
        return None


class VcpuFilter:
    name = "VcpuFilter"

    def refuse(self, host, spec, placement):
        if spec.vcpus > host.free_vcpus:
            return f"{spec.vcpus} vCPUs asked, {max(0, host.free_vcpus)} free"
        return None


class DiskFilter:
    name = "DiskFilter"

    def refuse(self, host, spec, placement):
        if spec.disk_gb > host.free_disk_gb:
            return f"{spec.disk_gb} GiB asked, {max(0, host.free_disk_gb)} free"
        return None


class ImagePropertiesFilter:
    name = "ImagePropertiesFilter"

    def refuse(self, host, spec, placement):
        props = spec.image_properties
        arch = props.get("architecture") or props.get("hw_architecture")
        if arch and canonical_arch(arch) != canonical_arch(host.arch):
            return f"image architecture {arch} does not match host architecture {host.arch}"
        hv = props.get("hypervisor_type") or props.get("img_hv_type")
        if hv:
            accepted = {host.hypervisor_type.lower()}
            if host.hypervisor_type.lower() in ("kvm", "qemu"):
                accepted |= {"qemu", "kvm"} if host.hypervisor_type.lower() == "kvm" else {"qemu"}
            if str(hv).lower() not in accepted:
                return f"image hypervisor_type {hv} is not offered (host runs {host.hypervisor_type})"
        if spec.image_min_ram and spec.ram_mb < spec.image_min_ram:
            return f"image needs min_ram {spec.image_min_ram} MiB, flavor has {spec.ram_mb}"
        if spec.image_min_disk and spec.root_gb and spec.root_gb < spec.image_min_disk:
            return f"image needs min_disk {spec.image_min_disk} GiB, flavor has {spec.root_gb}"
        return None


class ExtraSpecsFilter:
    """Flavor extra specs the host must satisfy: `hw:*` values must be sane for this host,
    `capabilities:<name>` must equal (or, with "<in> a b", be one of) the host's value."""

    name = "ExtraSpecsFilter"

    def refuse(self, host, spec, placement):
        es = spec.extra_specs
        policy = es.get("hw:cpu_policy")
        if policy is not None and policy not in ("shared", "dedicated", "mixed"):
            return f"hw:cpu_policy={policy} is not one of shared, dedicated"
        if policy == "mixed":
            return "hw:cpu_policy=mixed is not supported"
        nodes = es.get("hw:numa_nodes")
        if nodes is not None:
            try:
                n = int(nodes)
            except ValueError:
                return f"hw:numa_nodes={nodes} is not a number"
            if n < 1 or n > len(host.cells):
                return f"hw:numa_nodes={n} but the host has {len(host.cells)} NUMA cells"
        caps = {"hypervisor_type": host.hypervisor_type, "arch": host.arch,
                "cpu_info:arch": host.arch, "cpu_info:model": host.cpu_model,
                "hypervisor_hostname": host.name}
        for key, want in es.items():
            if not key.startswith("capabilities:"):
                continue
            cap = key.split(":", 1)[1]
            have = str(caps.get(cap, ""))
            if want.startswith("<in>"):
                if have not in want[4:].split():
                    return f"{key}: host has {have!r}, wanted one of {want[4:].split()}"
            elif want.startswith("s== "):
                if have != want[4:]:
                    return f"{key}: host has {have!r}, wanted {want[4:]!r}"
            elif have.lower() != want.lower():
                return f"{key}: host has {have!r}, wanted {want!r}"
        return None


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class NumaPinningFilter:
    """hw:cpu_policy=dedicated → specific free host pCPUs (never double-booked);
    hw:numa_nodes=N → N distinct host cells each holding its share of vCPUs and memory.
    A dedicated guest without hw:numa_nodes must fit in one host cell (as Nova)."""

    name = "NUMATopologyFilter"

    def refuse(self, host, spec, placement):
        nodes = spec.extra_specs.get("hw:numa_nodes")
        dedicated = spec.dedicated
        if nodes is None and not dedicated:
            return None
        n = int(nodes) if nodes is not None else 1
        if spec.vcpus < n:
            return f"{spec.vcpus} vCPUs cannot spread over {n} NUMA nodes"
        vcpu_split = _split(spec.vcpus, n)
        ram_split = _split(spec.ram_mb, n)
        if not host.cells:
            return "the host reports no NUMA topology"
        used: set[int] = set()
        chosen: list[NumaCellUse] = []
        next_vcpu = 0
        for i in range(n):
            best = None
            for cell in sorted(host.cells, key=lambda c: (-len(host.free_pcpus(c)),
                                                          -host.free_cell_ram(c))):
                if cell.id in used:
                    continue
                if host.free_cell_ram(cell) < ram_split[i]:
                    continue
                if dedicated and len(host.free_pcpus(cell)) < vcpu_split[i]:
                    continue
                best = cell
                break
            if best is None:
                what = (f"{vcpu_split[i]} dedicated pCPUs and {ram_split[i]} MiB"
                        if dedicated else f"{ram_split[i]} MiB")
                free = ", ".join(f"cell {c.id}: {len(host.free_pcpus(c))} pCPUs/"
                                 f"{host.free_cell_ram(c)} MiB free" for c in host.cells)
                return f"no host NUMA cell has {what} for guest cell {i} ({free})"
            used.add(best.id)
            vcpus = tuple(range(next_vcpu, next_vcpu + vcpu_split[i]))
            next_vcpu += vcpu_split[i]
            pcpus = tuple(host.free_pcpus(best)[:vcpu_split[i]]) if dedicated else ()
            chosen.append(NumaCellUse(host_node=best.id, vcpus=vcpus, memory_mb=ram_split[i],
                                      pcpus=pcpus))
        placement.numa = chosen if nodes is not None or dedicated else []
        placement.pcpus = [p for c in chosen for p in c.pcpus]
        return None


DEFAULT_FILTERS: list[HostFilter] = [ComputeFilter(), RamFilter(), VcpuFilter(), DiskFilter(),
                                     ImagePropertiesFilter(), ExtraSpecsFilter(),
                                     NumaPinningFilter()]


class HostWeigher(Protocol):
    name: str
    multiplier: float

    def weigh(self, host: HostState, spec: RequestSpec) -> float: ...


class RamWeigher:
    """Spread: more free RAM is better."""

    name = "RAMWeigher"
    multiplier = 1.0

    def weigh(self, host, spec):
        return host.free_ram_mb / max(1, host.ram_limit_mb)


class CpuWeigher:
    name = "CPUWeigher"
    multiplier = 1.0

    def weigh(self, host, spec):
        return host.free_vcpus / max(1, host.vcpu_limit)


DEFAULT_WEIGHERS: list[HostWeigher] = [RamWeigher(), CpuWeigher()]
