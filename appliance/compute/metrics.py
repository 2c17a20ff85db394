"""Compute's numbers for /metrics, read from memory at scrape time."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from appliance.metrics import Metric, Metrics, gauge


def register(metrics: Metrics, component: Any) -> None:
    def collect() -> Iterable[Metric]:
        m = component.manager
        by_state = gauge("monostack_guests", "Guests by vm_state", ["vm_state"])
        counts = Counter(str(d.get("vm_state")) for d in m.instances.docs())
        for state, n in sorted(counts.items()):
            by_state.add_metric([state], n)
        yield by_state
        yield _one("monostack_compute_tasks_running", "Conductor tasks in progress",
                   len(m._running))
        yield _one("monostack_compute_tasks_queued",
                   "Conductor tasks recorded and not finished", m.tasks.count())
        yield _one("monostack_libvirt_connected", "1 while the libvirt connection is up",
                   1 if m.driver.connected else 0)
        if m.scheduler is not None:
            host = m.scheduler.host_state()
            alloc = gauge("monostack_host_allocated", "Allocated to guests", ["resource"])
            cap = gauge("monostack_host_capacity", "Capacity (allocation ratios applied)",
                        ["resource"])
            for name, used, limit in (("vcpus", host.used_vcpus, host.vcpu_limit),
                                      ("ram_mb", host.used_ram_mb, host.ram_limit_mb),
                                      ("disk_gb", host.used_disk_gb, host.disk_limit_gb)):
                alloc.add_metric([name], used)
                cap.add_metric([name], limit)
            yield alloc
            yield cap
    metrics.source(collect)


def _one(name: str, doc: str, value: float) -> Metric:
    g = gauge(name, doc)
    g.add_metric([], value)
    return g
