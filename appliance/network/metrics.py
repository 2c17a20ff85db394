"""The network's numbers for /metrics: DHCP packets by type and leases by state."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from appliance.metrics import Metric, Metrics, counter, gauge


def register(metrics: Metrics, component: Any) -> None:
    def collect() -> Iterable[Metric]:
        m = component.manager
        packets = counter("monostack_dhcp_packets", "DHCP packets by bridge and kind",
                          ["bridge", "kind"])
        for bridge, stats in sorted(m.dhcp_stats().items()):
            for kind, n in sorted(stats.items()):
                packets.add_metric([bridge, kind], n)
        yield packets
        leases = gauge("monostack_dhcp_leases", "DHCP lease records by state", ["state"])
        for state, n in sorted(Counter(str(d.get("state")) for d in m.leases.docs()).items()):
            leases.add_metric([state], n)
        yield leases
    metrics.source(collect)
