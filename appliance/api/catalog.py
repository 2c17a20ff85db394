"""The service catalog handed out with every token: every service at its real URL."""
from __future__ import annotations

import uuid

from appliance.component import ApplianceContext, CatalogEntry

IDENTITY = CatalogEntry(type="identity", name="keystone", path="/identity")
REGION = "RegionOne"


def build_catalog(ctx: ApplianceContext, project_id: str | None) -> list[dict]:
    base = ctx.config.api.base_url
    entries = [IDENTITY]
    for component in ctx.components.values():
        entries.extend(getattr(component, "catalog", []))
    catalog = []
    for entry in entries:
        if "{project_id}" in entry.path and not project_id:
            continue
        url = base + entry.path.replace("{project_id}", project_id or "")
        eid = uuid.uuid5(uuid.NAMESPACE_URL, entry.type + url).hex
        catalog.append({
            "type": entry.type, "name": entry.name, "id": uuid.uuid5(uuid.NAMESPACE_URL, entry.type).hex,
            "endpoints": [{"id": f"{eid}-{iface}", "interface": iface, "region_id": REGION,
                           "region": REGION, "url": url}
                          for iface in ("public", "internal", "admin")],
        })
    return catalog
