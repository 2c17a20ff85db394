"""nova-scheduler for one host: inventory, filter → weigher pipeline, atomic claims.

`Scheduler.claim(spec, persist)` runs the pipeline and takes the claim under one asyncio lock,
where it counts at once as pending usage; `persist(claim)` is the caller's store commit of the
instance record carrying the claim, made after the lock is released, and the claim stops being
pending when that record is synced (or when the commit fails). So 20 concurrent requests are
decided one after another against usage that includes every claim still being committed, and
can never over-commit, while their commits share fsyncs (group commit) instead of taking one
each, in turn, inside the lock (20 fsyncs in a row before the last boot could start).

Usage is kept per instance (`sync(instance)` after every save of an instance record) and
rebuilt from the instance records at startup (`load`), so no claim outlives its instance.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from appliance.compute.scheduler.filters import (
    DEFAULT_FILTERS,
    DEFAULT_WEIGHERS,
    HostFilter,
    HostWeigher,
    Placement,
)
from appliance.compute.scheduler.host import Claim, HostCell, HostState, NumaCellUse, RequestSpec
from appliance.errors import NoValidHost

__all__ = ["Scheduler", "Claim", "RequestSpec", "HostState", "NumaCellUse", "Placement"]

GiB = 1 << 30


def disk_gb_of(path: Path) -> int:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize // GiB


class Scheduler:
    def __init__(self, compute_config: Any, host_info: Any, instances_dir: Path, *,
                 filters: list[HostFilter] | None = None,
                 weighers: list[HostWeigher] | None = None) -> None:
        self.config = compute_config
        self.host_info = host_info
        self.instances_dir = Path(instances_dir)
        self.filters = filters if filters is not None else list(DEFAULT_FILTERS)
        self.weighers = weighers if weighers is not None else list(DEFAULT_WEIGHERS)
        self.lock = asyncio.Lock()
        self._claims: dict[str, list[Claim]] = {}
        #: claims decided but not yet in a synced record
        self._pending: list[Claim] = []
        self.disk_gb = 0
        self.enabled = True

    async def refresh_disk(self) -> None:
        self.disk_gb = self.config.disk_gb or await asyncio.to_thread(disk_gb_of, self.instances_dir)

    # -- usage --------------------------------------------------------------------------

    def load(self, instances: Iterable[Any]) -> None:
        """Rebuild usage from instance records (startup)."""
        self._claims = {}
        for inst in instances:
            self.sync(inst)

    def sync(self, inst: Any) -> None:
        """Usage of one instance := what its record holds (call after each save)."""
        claims = [c for c in (inst.claim, inst.old_claim) if c is not None]
        if self._pending:  # a record holding a pending claim: it is counted there now
            self._pending = [p for p in self._pending if all(p is not c for c in claims)]
        if claims:
            self._claims[inst.id] = claims
        else:
            self._claims.pop(inst.id, None)

    def forget(self, instance_id: str) -> None:
        self._claims.pop(instance_id, None)

    def claim_count(self) -> int:
        return sum(len(c) for c in self._claims.values())

    def host_state(self) -> HostState:
        hi = self.host_info
        cells = tuple(HostCell(id=c.id, cpus=tuple(c.cpus), memory_mb=c.memory_mib)
                      for c in hi.numa_cells)
        host = HostState(
            name=hi.hostname, arch=hi.arch, hypervisor_type=str(hi.hypervisor_type),
            cpus=hi.cpus, memory_mb=hi.memory_mib, disk_gb=self.disk_gb, cells=cells,
            cpu_allocation_ratio=self.config.cpu_allocation_ratio,
            ram_allocation_ratio=self.config.ram_allocation_ratio,
            disk_allocation_ratio=self.config.disk_allocation_ratio,
            reserved_memory_mb=self.config.reserved_host_memory_mb,
            reserved_cpus=self.config.reserved_host_cpus, enabled=self.enabled,
            cpu_model=getattr(hi, "cpu_model", ""))
        for claims in self._claims.values():
            for c in claims:
                host.consume(c)
        for c in self._pending:
            host.consume(c)
        return host

    # -- deciding -----------------------------------------------------------------------

    def select(self, spec: RequestSpec, hosts: list[HostState] | None = None
               ) -> tuple[HostState, Placement]:
        """Run the pipeline; NoValidHost names the filter that refused and why."""
        hosts = hosts if hosts is not None else [self.host_state()]
        admitted: list[tuple[HostState, Placement]] = []
        reasons: list[str] = []
        for host in hosts:
            placement = Placement()
            for f in self.filters:
                why = f.refuse(host, spec, placement)
                if why is not None:
                    reasons.append(f"{f.name}: {why}")
                    break
            else:
                admitted.append((host, placement))
        if not admitted:
            raise NoValidHost("No valid host was found. " + "; ".join(reasons),
                              reasons=reasons)
        admitted.sort(key=lambda hp: sum(w.multiplier * w.weigh(hp[0], spec)
                                         for w in self.weighers), reverse=True)
        return admitted[0]

    async def claim(self, spec: RequestSpec,
                    persist: Callable[[Claim], Awaitable[None]]) -> Claim:
        """Check and take a claim atomically; `persist` commits it with the instance record."""
        # the disk's size is read before the lock, not under it: a burst of 20 claims each
        # waited there in turn for a thread to read it (the hops queued behind the store's
        # fsyncs in the same pool), 5-10 ms apiece
        await self.refresh_disk()
        async with self.lock:
            _, placement = self.select(spec)
            claim = Claim(vcpus=spec.vcpus, ram_mb=spec.ram_mb, disk_gb=spec.disk_gb,
                          pcpus=tuple(placement.pcpus), numa=tuple(placement.numa))
            self._pending.append(claim)
        try:
            await persist(claim)
        finally:  # not committed, or committed but never synced: pending no more
            self._pending = [p for p in self._pending if p is not claim]
        return claim

    def usage(self) -> dict[str, Any]:
        h = self.host_state()
        return {"vcpus": h.vcpu_limit, "vcpus_used": h.used_vcpus,
                "memory_mb": h.ram_limit_mb + h.reserved_memory_mb, "memory_mb_used":
                h.used_ram_mb + h.reserved_memory_mb, "local_gb": h.disk_limit_gb,
                "local_gb_used": h.used_disk_gb, "free_ram_mb": h.free_ram_mb,
                "free_disk_gb": h.free_disk_gb, "pinned": sorted(h.pinned),
                "host": h}
