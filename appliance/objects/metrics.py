"""The object store's numbers for /metrics: objects and bytes stored, and the auditor."""
from __future__ import annotations

from typing import Any, Iterable

from appliance.metrics import Metric, Metrics, counter, gauge


def register(metrics: Metrics, component: Any) -> None:
    totals = {"containers": 0, "objects": 0, "bytes": 0}

    async def refresh() -> None:
        if component.engine.index is not None:
            totals.update(await component.engine.index.totals())

    def collect() -> Iterable[Metric]:
        for key in ("containers", "objects", "bytes"):
            g = gauge(f"monostack_object_store_{key}", f"Object store {key} (all accounts)")
            g.add_metric([], totals[key])
            yield g
        st = component.auditor.status
        passes = counter("monostack_object_auditor_passes", "Auditor passes completed")
        passes.add_metric([], st.passes_completed)
        yield passes
        checked = gauge("monostack_object_auditor_checked",
                        "Objects checked in the current (or last) auditor pass")
        checked.add_metric([], st.objects_checked)
        yield checked
        findings = counter("monostack_object_replicas", "Auditor findings and repairs",
                           ["outcome"])
        for outcome in ("corrupt", "missing", "repaired", "lost"):
            findings.add_metric([outcome], getattr(st, outcome))
        yield findings
    metrics.refresher(refresh)
    metrics.source(collect)
