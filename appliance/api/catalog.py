"""The service catalog handed out with every token: every service at its real URL.

Keystone keeps endpoints as templates (`…/volume/v3/$(project_id)s`) and fills them per
token; so do we: an endpoint's id is the same in every project's catalog and in
`GET /v3/endpoints`, which lists the templates.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from appliance.component import ApplianceContext, CatalogEntry

IDENTITY = CatalogEntry(type="identity", name="keystone", path="/identity")
REGION = "RegionOne"
INTERFACES = ("public", "internal", "admin")


@dataclass(frozen=True)
class Service:
    id: str
    type: str
    name: str
    #: base URL + path, `{project_id}` left in
    template: str

    def endpoint_id(self, interface: str) -> str:
        return f"{uuid.uuid5(uuid.NAMESPACE_URL, self.type + self.template).hex}-{interface}"

    def url(self, project_id: str | None) -> str:
        return self.template.replace("{project_id}", project_id or "")

    @property
    def per_project(self) -> bool:
        return "{project_id}" in self.template


def services(ctx: ApplianceContext) -> list[Service]:
    base = ctx.config.api.base_url
    entries = [IDENTITY]
    for component in ctx.components.running():
        entries.extend(component.catalog)
    return [Service(id=uuid.uuid5(uuid.NAMESPACE_URL, e.type).hex, type=e.type, name=e.name,
                    template=base + e.path) for e in entries]


def build_catalog(ctx: ApplianceContext, project_id: str | None) -> list[dict]:
    catalog = []
    for svc in services(ctx):
        if svc.per_project and not project_id:
            continue
        url = svc.url(project_id)
        catalog.append({
            "type": svc.type, "name": svc.name, "id": svc.id,
            "endpoints": [{"id": svc.endpoint_id(iface), "interface": iface, "region_id": REGION,
                           "region": REGION, "url": url} for iface in INTERFACES],
        })
    return catalog
