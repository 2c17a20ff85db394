"""The seam every component plugs into.

A component (compute, network, images, volumes, objects …) is a class constructed with the
`ApplianceContext`, answering for its catalog entries; its HTTP routes belong to `appliance.api`
(`api/app.py` adds a component's route table when the component runs). The daemon starts
components in order and stops them in reverse; a component that fails to start is reported
and left out (its endpoints answer 503), never taking the daemon down with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from appliance.metrics import Metrics
from appliance.quota import Quotas

if TYPE_CHECKING:
    from appliance.config import Config
    from appliance.events import EventBus
    from appliance.identity import IdentityService
    from appliance.state import Store


@dataclass(frozen=True)
class CatalogEntry:
    """One service in the token catalog; `path` may hold `{project_id}`."""

    type: str
    name: str
    path: str


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
    components: dict[str, Any] = field(default_factory=dict)


class Component(Protocol):
    name: str
    catalog: list[CatalogEntry]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
