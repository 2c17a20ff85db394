"""What the namespace's ruleset holds of each port, and the commands that change one port.

The data plane loads the whole ruleset (rules.build) at start and when anything shared
changes; then it keeps here the ports' parts that went in. A port created, changed or deleted
becomes one small nft transaction: its map entries and set elements dropped, the chains of its
groups added when it is their first port and removed after their last, its map entries and set
elements added — the same parts, named the same way, as rules.build renders into the whole
document, so a ruleset changed port by port equals the one a restart would build
(tests/integration compares the two in a namespace).

An address two ports claim (an allowed address pair) dispatches to the lowest port id, in both
paths; a set holds an element while any port has it (a remote group's set an address while any
member port has it); the chains of a list of groups stay while any port uses them.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from appliance.network.rules import (
    EGRESS_MAP,
    INGRESS_MAP,
    SPOOF_TABLE,
    TABLE,
    PortRules,
    add_chain_cmds,
    element,
    map_key,
    remote_set,
    verdict,
)

#: a set element: (family, table, set name, key)
Element = tuple[str, str, str, tuple[str, ...]]


class AppliedRules:
    def __init__(self, units: list[PortRules], referenced: list[str]) -> None:
        self.units: dict[str, PortRules] = {u.port_id: u for u in units}
        #: groups with a remote-group set in the ruleset (changing these is a full rebuild)
        self.referenced = frozenset(referenced)
        self._claims: dict[tuple[str, str], set[str]] = {}
        self._elements: Counter[Element] = Counter()
        self._chain_users: Counter[str] = Counter()
        self._chain_rules: dict[str, Any] = {}
        for unit in units:
            self._claim(unit, 1)

    def _unit_elements(self, unit: PortRules) -> list[Element]:
        out: list[Element] = [("bridge", SPOOF_TABLE, name, key) for name, key in unit.spoof]
        out += [("ip", TABLE, remote_set(sg), (ip,)) for sg, ip in unit.members
                if sg in self.referenced]
        return out

    def _claim(self, unit: PortRules, sign: int) -> None:
        for key in unit.keys:
            ids = self._claims.setdefault(key, set())
            if sign > 0:
                ids.add(unit.port_id)
            else:
                ids.discard(unit.port_id)
                if not ids:
                    del self._claims[key]
        for elem in self._unit_elements(unit):
            self._elements[elem] += sign
            if self._elements[elem] <= 0:
                del self._elements[elem]
        for name, rules in unit.groups_chains:
            self._chain_users[name] += sign
            if self._chain_users[name] <= 0:
                del self._chain_users[name]
            elif sign > 0:
                self._chain_rules[name] = rules

    def _owner(self, key: tuple[str, str]) -> str | None:
        ids = self._claims.get(key)
        return min(ids) if ids else None

    def change(self, new: dict[str, PortRules | None]) -> list[dict[str, Any]]:
        """The nft commands taking the ruleset from the applied parts to `new` (port id → its
        part, None when the port is gone or unguarded), in one transaction's order; and the
        applied parts become `new` (call again with the old parts to undo on failure)."""
        changes = {pid: (self.units.get(pid), unit) for pid, unit in new.items()
                   if self.units.get(pid) != unit}
        if not changes:
            return []
        parts = [u for old, unit in changes.values() for u in (old, unit) if u]
        keys = {k for u in parts for k in u.keys}
        elements = {e for u in parts for e in self._unit_elements(u)}
        chain_names = {name for u in parts for name, _ in u.groups_chains}
        owners_before = {k: self._owner(k) for k in keys}
        elements_before = {e: self._elements[e] > 0 for e in elements}
        chains_before = {n: (self._chain_users[n] > 0, self._chain_rules.get(n))
                         for n in chain_names}
        for pid, (old, unit) in changes.items():
            if old is not None:
                self._claim(old, -1)
            if unit is not None:
                self._claim(unit, 1)
                self.units[pid] = unit
            else:
                self.units.pop(pid, None)
        owners_after = {k: self._owner(k) for k in keys}

        drops: list[dict] = []  # map entries and elements first, so chains can go
        chains: list[dict] = []
        adds: list[dict] = []
        removed: list[dict] = []  # chains no port uses any more, last
        for key in sorted(keys):
            before, after = owners_before[key], owners_after[key]
            old_unit = changes[before][0] if before in changes else self.units.get(before or "")
            new_unit = self.units.get(after or "")
            moved = _group_chain_names(old_unit) != _group_chain_names(new_unit)
            if before is not None and (before != after or moved):
                for name in (EGRESS_MAP, INGRESS_MAP):
                    drops.append(_element("delete", "ip", TABLE, name, map_key(key)))
            if after is not None and (before != after or moved):
                out_chain, in_chain = _group_chain_names(new_unit)  # type: ignore[misc]
                adds.append(_element("add", "ip", TABLE, EGRESS_MAP,
                                     [map_key(key), verdict(out_chain)]))
                adds.append(_element("add", "ip", TABLE, INGRESS_MAP,
                                     [map_key(key), verdict(in_chain)]))
        for elem in sorted(elements):
            had, has = elements_before[elem], self._elements[elem] > 0
            if had != has:
                family, table, name, key = elem
                (adds if has else drops).append(
                    _element("add" if has else "delete", family, table, name, element(key)))
        for name in sorted(chain_names):
            (had, old_rules), has = chains_before[name], self._chain_users[name] > 0
            rules = self._chain_rules.get(name)
            if has and (not had or rules != old_rules):
                chains.extend(add_chain_cmds("ip", TABLE, name, rules, new=not had))
            elif had and not has:
                del self._chain_rules[name]
                ref = {"family": "ip", "table": TABLE, "name": name}
                removed.append({"flush": {"chain": ref}})
                removed.append({"delete": {"chain": ref}})
        return [*drops, *chains, *adds, *removed]


def _group_chain_names(unit: PortRules | None) -> tuple[str, str] | None:
    if unit is None or not unit.groups_chains:
        return None
    (out_chain, _), (in_chain, _) = unit.groups_chains
    return out_chain, in_chain


def _element(op: str, family: str, table: str, name: str, elem: Any) -> dict[str, Any]:
    return {op: {"element": {"family": family, "table": table, "name": name, "elem": [elem]}}}
