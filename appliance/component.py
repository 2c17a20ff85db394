"""The seam every component plugs into, and the one record of which components run.

A component (compute, network, images, volumes, objects) is a class built by
`appliance/service.py` with the `ApplianceContext` and, through its constructor, the other
components it uses (typed by the Protocols in `appliance/seams.py`). The daemon starts
components in order and stops them in reverse; a component that fails to start is reported
and left out (its endpoints are not served), never taking the daemon down with it. Its HTTP
routes belong to `appliance.api` (`api/app.py` adds a component's route table when the
component runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from appliance.metrics import Metrics
from appliance.quota import Quotas

if TYPE_CHECKING:
    from appliance.compute.component import ComputeComponent
    from appliance.config import Config
    from appliance.events import EventBus
    from appliance.identity import IdentityService
    from appliance.images.component import ImageComponent
    from appliance.network.component import NetworkComponent
    from appliance.objects.component import ObjectComponent
    from appliance.state import Store
    from appliance.volumes.component import VolumeComponent


@dataclass(frozen=True)
class CatalogEntry:
    """One service in the token catalog; `path` may hold `{project_id}`."""

    type: str
    name: str
    path: str


class Component(Protocol):
    """What the daemon, the catalog and /healthz ask of every component."""

    name: str
    catalog: list[CatalogEntry]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def bootstrap(self, admin_project: Any) -> None:
        """`monostack init`: the records a fresh appliance starts with (idempotent)."""
        ...

    async def settled(self) -> None:
        """Until its slow start-up work (compute's reconciliation) is over; start() returns
        before it is, so the API answers meanwhile."""
        ...

    def health(self) -> str:
        """"ok …", or "degraded: why" when it runs but cannot do its job."""
        ...


@dataclass
class Components:
    """The components that run (None: not configured, or failed to start). The API reaches a
    service through these typed fields; components reach each other through their
    constructors, never through this record."""

    image: "ImageComponent | None" = None
    volume: "VolumeComponent | None" = None
    network: "NetworkComponent | None" = None
    compute: "ComputeComponent | None" = None
    object: "ObjectComponent | None" = None

    def running(self) -> Iterator[Component]:
        """The running components in start order."""
        for component in (self.image, self.volume, self.network, self.compute, self.object):
            if component is not None:
                yield component


@dataclass
class ApplianceContext:
    config: "Config"
    store: "Store"
    identity: "IdentityService"
    events: "EventBus"
    #: the one quota ledger every service reserves through
    quotas: Quotas = field(default_factory=Quotas)
    #: the daemon's Prometheus registry (appliance/metrics.py)
    metrics: Metrics = field(default_factory=Metrics)
    #: the audit trail (appliance/audit.py); None until the daemon opens it
    audit: Any = None
    components: Components = field(default_factory=Components)
