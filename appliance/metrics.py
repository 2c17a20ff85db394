"""The appliance's numbers in Prometheus' text format (`GET /metrics`), one registry per daemon.

Two kinds: events counted where they happen (API requests and their latency, conductor task
durations, state-store fsyncs), and levels read when scraped (guests by state, allocation
against capacity, task queue, DHCP, object store, journal size, libvirt connection). A
component adds its levels with `source()` (read at scrape time from memory, never blocking)
and, for numbers that need I/O, a `refresher` awaited before each scrape.

prometheus-client writes the exposition (and its parser reads it back in the tests), so the
format is the reference implementation's, not ours.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger("monostack.metrics")

Source = Callable[[], Iterable[Metric]]
Refresher = Callable[[], Awaitable[None]]

#: API latency buckets: sub-millisecond reads up to slow writes
API_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: conductor tasks run from milliseconds (test driver) to minutes (TCG builds)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
FSYNC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)

__all__ = ["CounterMetricFamily", "GaugeMetricFamily", "Metrics"]


class _Sources:
    """A collector over the components' scrape-time sources."""

    def __init__(self, sources: list[Source]) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        for source in list(self._sources):
            try:
                yield from source()
            except Exception:  # noqa: BLE001 — one broken source must not hide the rest
                log.warning("metrics source failed", exc_info=True)

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.api_requests = Counter("monostack_api_requests", "API requests answered",
                                    ["service", "method", "status"], registry=r)
        self.api_latency = Histogram("monostack_api_request_duration_seconds",
                                     "API request latency", ["service"],
                                     buckets=API_BUCKETS, registry=r)
        self.task_duration = Histogram("monostack_compute_task_duration_seconds",
                                       "Compute conductor task durations",
                                       ["action", "result"], buckets=TASK_BUCKETS, registry=r)
        self.fsync = Histogram("monostack_state_fsync_seconds",
                               "State store journal append+fsync latency",
                               buckets=FSYNC_BUCKETS, registry=r)
        self._sources: list[Source] = []
        self._refreshers: list[Refresher] = []
        r.register(_Sources(self._sources))  # type: ignore[arg-type]

    def source(self, fn: Source) -> None:
        self._sources.append(fn)

    def refresher(self, fn: Refresher) -> None:
        self._refreshers.append(fn)

    async def exposition(self) -> bytes:
        for refresh in list(self._refreshers):
            try:
                await refresh()
            except Exception:  # noqa: BLE001
                log.warning("metrics refresher failed", exc_info=True)
        return generate_latest(self.registry)


def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def store_metrics(metrics: Metrics, store: object) -> None:
    """The state store's journal: bytes since the last snapshot (its fsyncs are timed where
    they happen)."""
    def collect() -> Iterable[Metric]:
        g = gauge("monostack_state_journal_bytes", "State store journal size since snapshot")
        g.add_metric([], getattr(store, "journal_size", 0))
        yield g
    metrics.source(collect)
