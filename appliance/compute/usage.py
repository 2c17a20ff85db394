"""Each project's instances, cores and RAM, kept as running totals.

Quota admission asks this at every create; summing the project's instance documents made a
create cost more with every server already there. The totals are built from the table at
first use and then follow every committed change of an instance (Store.watch) at O(1).
"""
from __future__ import annotations

from typing import Any

from appliance.state.index import Tally

RESOURCES = ("instances", "cores", "ram")


def _amounts(doc: dict[str, Any]) -> tuple[int, int, int]:
    flavor = doc.get("flavor") or {}
    return 1, int(flavor.get("vcpus") or 0), int(flavor.get("ram") or 0)


class ProjectUsage(Tally[dict[str, list[int]]]):
    def of(self, project_id: str) -> dict[str, int]:
        return dict(zip(RESOURCES, self._built().get(project_id, [0, 0, 0])))

    def _new(self) -> dict[str, list[int]]:
        return {}

    def _fold(self, state: dict[str, list[int]], doc: dict[str, Any], sign: int) -> None:
        totals = state.setdefault(doc.get("project_id", ""), [0, 0, 0])
        for i, amount in enumerate(_amounts(doc)):
            totals[i] += sign * amount
