"""What the namespace's ruleset holds of each port, and the commands that change one port.

The data plane loads the whole ruleset (rules.build) at start and when anything shared
changes; then it keeps here the ports' parts that went in. A port created, changed or deleted
becomes one small nft transaction: its map entries dropped, its chains flushed or removed,
its new chains and rules added, its map entries and remote-group members added — the same
parts, named the same way, as rules.build renders into the whole document, so a ruleset
changed port by port equals the one a restart would build (tests/integration compares the two
in a namespace).

An address two ports claim (an allowed address pair) dispatches to the lowest port id, in both
paths; a remote group's set holds an address while any member port has it.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from appliance.network.rules import (
    EGRESS_MAP,
    INGRESS_MAP,
    SPOOF_MAP,
    SPOOF_TABLE,
    TABLE,
    PortRules,
    add_chain_cmds,
    map_key,
    remote_set,
    table_of,
    verdict,
)


class AppliedRules:
    def __init__(self, units: list[PortRules], referenced: list[str]) -> None:
        self.units: dict[str, PortRules] = {u.port_id: u for u in units}
        #: groups with a remote-group set in the ruleset (changing these is a full rebuild)
        self.referenced = frozenset(referenced)
        self._claims: dict[tuple[str, str], set[str]] = {}
        self._members: Counter[tuple[str, str]] = Counter()
        for unit in units:
            self._claim(unit, 1)

    def _claim(self, unit: PortRules, sign: int) -> None:
        for key in unit.keys:
            ids = self._claims.setdefault(key, set())
            if sign > 0:
                ids.add(unit.port_id)
            else:
                ids.discard(unit.port_id)
                if not ids:
                    del self._claims[key]
        for sg, ip in unit.members:
            if sg in self.referenced:
                self._members[(sg, ip)] += sign
                if self._members[(sg, ip)] <= 0:
                    del self._members[(sg, ip)]

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
        keys = {k for old, unit in changes.values() for u in (old, unit) if u for k in u.keys}
        members = {m for old, unit in changes.values() for u in (old, unit) if u
                   for m in u.members if m[0] in self.referenced}
        owners_before = {k: self._owner(k) for k in keys}
        members_before = {m: self._members[m] > 0 for m in members}
        for pid, (old, unit) in changes.items():
            if old is not None:
                self._claim(old, -1)
            if unit is not None:
                self._claim(unit, 1)
                self.units[pid] = unit
            else:
                self.units.pop(pid, None)
        owners_after = {k: self._owner(k) for k in keys}

        drops: list[dict] = []  # map entries and members first, so chains can go
        chains: list[dict] = []
        adds: list[dict] = []
        for key in sorted(keys):
            before, after = owners_before[key], owners_after[key]
            old_unit = changes[before][0] if before in changes else self.units.get(before or "")
            new_unit = self.units.get(after or "")
            if before is not None and (before != after or _group_chain_names(old_unit)
                                       != _group_chain_names(new_unit)):
                for name in (EGRESS_MAP, INGRESS_MAP):
                    drops.append(_element("delete", "ip", TABLE, name, map_key(key)))
            if after is not None and (before != after or _group_chain_names(old_unit)
                                      != _group_chain_names(new_unit)):
                out_chain, in_chain = _group_chain_names(new_unit)
                adds.append(_element("add", "ip", TABLE, EGRESS_MAP,
                                     [map_key(key), verdict(out_chain)]))
                adds.append(_element("add", "ip", TABLE, INGRESS_MAP,
                                     [map_key(key), verdict(in_chain)]))
        for member in sorted(members):
            had, has = members_before[member], self._members[member] > 0
            if had != has:
                sg, ip = member
                (adds if has else drops).append(
                    _element("add" if has else "delete", "ip", TABLE, remote_set(sg), ip))
        for pid, (old, unit) in sorted(changes.items()):
            if old is not None and (unit is None or unit.tap != old.tap
                                    or unit.spoof[0] != old.spoof[0]):
                drops.append(_element("delete", "bridge", SPOOF_TABLE, SPOOF_MAP, old.tap))
            if unit is not None and (old is None or unit.tap != old.tap
                                     or unit.spoof[0] != old.spoof[0]):
                adds.append(_element("add", "bridge", SPOOF_TABLE, SPOOF_MAP,
                                     [unit.tap, verdict(unit.spoof[0])]))
            old_chains = {(f, n): r for f, n, r in old.chains()} if old else {}
            new_chains = {(f, n): r for f, n, r in unit.chains()} if unit else {}
            for (family, name), rules in new_chains.items():
                if old_chains.get((family, name)) != rules:
                    chains.extend(add_chain_cmds(family, table_of(family), name, rules,
                                                 new=(family, name) not in old_chains))
            for family, name in old_chains.keys() - new_chains.keys():
                ref = {"family": family, "table": table_of(family), "name": name}
                chains.append({"flush": {"chain": ref}})
                chains.append({"delete": {"chain": ref}})
        # removed chains last among the chain commands: entries pointing at them are gone
        chains.sort(key=lambda c: "delete" in c)
        return [*drops, *chains, *adds]


def _group_chain_names(unit: PortRules | None) -> tuple[str, str] | None:
    if unit is None or not unit.groups_chains:
        return None
    (out_chain, _), (in_chain, _) = unit.groups_chains
    return out_chain, in_chain


def _element(op: str, family: str, table: str, name: str, elem: Any) -> dict[str, Any]:
    return {op: {"element": {"family": family, "table": table, "name": name, "elem": [elem]}}}
