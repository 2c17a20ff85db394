"""Each project's instances, cores and RAM, kept as running totals.

Quota admission asks this at every create; summing the project's instance documents made a
create cost more with every server already there. The totals are built from the table at
first use and then follow every committed change of an instance (Store.watch) at O(1).
"""
from __future__ import annotations

from typing import Any

from appliance.state import Store

RESOURCES = ("instances", "cores", "ram")


def _amounts(doc: dict[str, Any]) -> tuple[int, int, int]:
    flavor = doc.get("flavor") or {}
    return 1, int(flavor.get("vcpus") or 0), int(flavor.get("ram") or 0)


class ProjectUsage:
    def __init__(self, store: Store, table: str) -> None:
        self._store = store
        self._table = table
        self._totals: dict[str, list[int]] | None = None
        store.watch(table, self._changed)

    def of(self, project_id: str) -> dict[str, int]:
        if self._totals is None:
            self._totals = {}
            for doc in self._store.all(self._table):
                self._add(doc, 1)
        totals = self._totals.get(project_id, [0, 0, 0])
        return dict(zip(RESOURCES, totals))

    def _add(self, doc: dict[str, Any], sign: int) -> None:
        assert self._totals is not None
        totals = self._totals.setdefault(doc.get("project_id", ""), [0, 0, 0])
        for i, amount in enumerate(_amounts(doc)):
            totals[i] += sign * amount

    def _changed(self, id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self._totals is None:
            return  # not built yet: the first use reads the table as it is then
        if old is not None:
            self._add(old, -1)
        if new is not None:
            self._add(new, 1)
