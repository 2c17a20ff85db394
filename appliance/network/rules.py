"""The whole nftables ruleset of the data-plane namespace, generated from the records.

Pure: records in, one JSON document out. The data plane applies the whole document at start
and after a change of anything shared (networks, subnets, groups' rules, routers, floating IPs),
each table replaced in the same transaction ("add table; delete table; add table …"), so no
packet sees a half-built ruleset. What one guest port adds — its entries in the
anti-spoofing sets, in the named verdict maps that dispatch to its groups' chains, in the
remote-group sets — is one `PortRules`, the same whether rendered into the whole document or
applied alone: a port created, changed or deleted changes only its own part
(network/rules_applied.py), in one transaction too, instead of the whole ruleset being rebuilt
and reloaded (305 ms at 100 ports). A port adds set elements, not chains: every `nft` call
lists all chains and sets of the namespace before it does anything, so with three chains and
three anonymous sets per port a one-port change cost 5.7 ms at 10 ports and 12 ms at 1,000
(measured on this 2-core host); with the chains shared it costs the same at both.

Two tables, because of what this kernel can do:

* `bridge monostack_spoof` — stateless anti-spoofing on every port that has port security, at
  the bridge's prerouting hook for the interfaces in `spoof_ports`, one chain for all, each
  check a lookup of interface name . address in a set the ports fill: frames must come from
  the port's MAC(s), ARP must claim its addresses, IPv4 must come from its fixed IPs or
  allowed address pairs (0.0.0.0 only for DHCP client traffic), and no DHCP server replies
  (udp sport 67) may come from a guest. Anything that is neither IPv4 nor ARP is dropped.

* `ip monostack` — security groups and routing, stateful. The bridge family has no conntrack
  here (CONFIG_NF_CONNTRACK_BRIDGE is off on the appliance kernel), but br_netfilter passes
  bridged IPv4 through the ip hooks with conntrack, where the interface names are the bridges'.
  A port is therefore identified by `bridge . address` — honest, because anti-spoofing runs
  first. Per list of groups in use, `sg_out_<groups>` (egress: returns or drops) and
  `sg_in_<groups>` (ingress: accepts or drops), shared by the ports with those groups, are
  reached through verdict maps keyed by the ports' addresses from the forward, input and
  output hooks.
  Routing policy: traffic between two bridges flows only when one router connects them, out to
  an external network only from a router's subnets (SNAT to the router's gateway address), and
  into a floating IP (DNAT 1:1, SNAT back). The external network is just another bridge in the
  namespace: nothing here routes out of it to the host.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from appliance.network.records import (
    FloatingIP,
    Network,
    Port,
    PortOwner,
    Router,
    SecurityGroupRule,
    Subnet,
)

SPOOF_TABLE = "monostack_spoof"
TABLE = "monostack"
DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68


@dataclass
class FirewallState:
    networks: list[Network] = field(default_factory=list)
    subnets: list[Subnet] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    rules: list[SecurityGroupRule] = field(default_factory=list)
    routers: list[Router] = field(default_factory=list)
    floatingips: list[FloatingIP] = field(default_factory=list)


# ---- JSON expression helpers -------------------------------------------------------------------

def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _payload(proto: str, fld: str) -> dict:
    return {"payload": {"protocol": proto, "field": fld}}


def _match(left: Any, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _addr(value: str) -> Any:
    """An address or a prefix as nft JSON."""
    net = ipaddress.ip_network(value, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _set(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else {"set": items}


ACCEPT: dict = {"accept": None}
DROP: dict = {"drop": None}
RETURN: dict = {"return": None}


def _jump(chain: str) -> dict:
    return {"jump": {"target": chain}}


class _Builder:
    def __init__(self, family: str, table: str) -> None:
        self.family, self.table = family, table
        self.cmds: list[dict] = [
            {"add": {"table": {"family": family, "name": table}}},
            {"delete": {"table": {"family": family, "name": table}}},
            {"add": {"table": {"family": family, "name": table}}},
        ]

    def chain(self, name: str, hook: str | None = None, prio: int = 0, ctype: str = "filter",
              policy: str = "accept") -> None:
        chain: dict[str, Any] = {"family": self.family, "table": self.table, "name": name}
        if hook:
            chain.update(type=ctype, hook=hook, prio=prio, policy=policy)
        self.cmds.append({"add": {"chain": chain}})

    def rule(self, chain: str, *expr: dict) -> None:
        self.cmds.append({"add": {"rule": {"family": self.family, "table": self.table,
                                           "chain": chain, "expr": list(expr)}}})

    def map(self, name: str, type_: str | list[str], elems: list[Any]) -> None:
        """A named verdict map: ports come and go as its elements, the rule using it stays."""
        m: dict[str, Any] = {"family": self.family, "table": self.table, "name": name,
                             "type": type_, "map": "verdict"}
        if elems:
            m["elem"] = elems
        self.cmds.append({"add": {"map": m}})

    def set(self, name: str, type_: str | list[str], elems: list[Any],
            flags: list[str] | None = None) -> None:
        s: dict[str, Any] = {"family": self.family, "table": self.table, "name": name,
                             "type": type_}
        if flags:
            s["flags"] = flags
        if elems:
            s["elem"] = elems
        self.cmds.append({"add": {"set": s}})


def _short(id_: str) -> str:
    return id_.replace("-", "")


# ---- one port's part ---------------------------------------------------------------------------

#: bridge table: the interfaces of guarded ports, and what each may send from (interface name .
#: MAC, interface name . IPv4 address, interface name . IPv4 prefix for address pairs)
SPOOF_PORTS = "spoof_ports"
SPOOF_MACS = "spoof_macs"
SPOOF_IPS = "spoof_ips"
SPOOF_NETS = "spoof_nets"
SPOOF_CHAIN = "spoof"
#: ip table: bridge . address → jump to the egress / ingress chain of the port's groups
EGRESS_MAP = "sg_egress"
INGRESS_MAP = "sg_ingress"
#: the bridge table's sets: name → (type, flags)
SPOOF_SETS: dict[str, tuple[str | list[str], list[str]]] = {
    SPOOF_PORTS: ("ifname", []),
    SPOOF_MACS: (["ifname", "ether_addr"], []),
    SPOOF_IPS: (["ifname", "ipv4_addr"], []),
    SPOOF_NETS: (["ifname", "ipv4_addr"], ["interval"]),
}

Chain = tuple[str, tuple[tuple[dict, ...], ...]]


@dataclass(frozen=True)
class PortRules:
    """What one guarded port adds to the ruleset: elements only, so the kernel's chain and
    set count (which every nft call lists whole) stays flat as ports come. Anti-spoofing is
    the port's entries in the bridge table's sets (set name, element); its addresses key the
    security-group maps (a shared one goes to the lowest port id) to the chains of its groups,
    one pair per distinct list of groups, shared by every port with that list; its fixed IPs
    are members of each of its groups' remote-group sets."""

    port_id: str
    tap: str
    spoof: tuple[tuple[str, tuple[str, ...]], ...]
    #: egress and ingress chains of the port's groups; empty when the port's network is gone
    groups_chains: tuple[Chain, ...]
    keys: tuple[tuple[str, str], ...]
    members: tuple[tuple[str, str], ...]  # (group id, address)


def _spoof_elements(port: Port) -> tuple[tuple[str, tuple[str, ...]], ...]:
    tap = port.tap_name
    macs = sorted({port.mac_address} | {p["mac_address"] for p in port.allowed_address_pairs
                                         if p.get("mac_address")})
    addrs = [ipaddress.ip_network(a, strict=False) for a in
             {*port.ips(), *(p["ip_address"] for p in port.allowed_address_pairs)}]
    ips = sorted({str(n.network_address) for n in addrs if n.prefixlen == n.max_prefixlen},
                 key=ipaddress.IPv4Address)
    # prefixes of one port must not overlap in an interval set: collapsed
    nets = ipaddress.collapse_addresses(n for n in addrs if n.prefixlen < n.max_prefixlen)
    return ((SPOOF_PORTS, (tap,)), *((SPOOF_MACS, (tap, m)) for m in macs),
            *((SPOOF_IPS, (tap, ip)) for ip in ips),
            *((SPOOF_NETS, (tap, str(n))) for n in nets))


def element(key: tuple[str, ...]) -> Any:
    """A set element as nft JSON: a single value, or a concatenation (prefixes as such)."""
    values = [_addr(v) if "/" in v else v for v in key]
    return values[0] if len(values) == 1 else {"concat": values}


def _spoof_chain() -> tuple[tuple[dict, ...], ...]:
    """The one anti-spoofing chain, reached from the bridge's prerouting hook for every
    guarded port's interface; each check is a lookup of interface . address in a set."""
    iif = _meta("iifname")
    rules: list[tuple[dict, ...]] = []
    rules.append((_match({"concat": [iif, _payload("ether", "saddr")]}, "@" + SPOOF_MACS, "!="),
                  DROP))
    # ARP: the sender hardware and protocol addresses must be the port's (0.0.0.0 = probe).
    is_arp = _match(_payload("ether", "type"), "arp")
    rules.append((is_arp, _match({"concat": [iif, _payload("arp", "saddr ether")]},
                                 "@" + SPOOF_MACS, "!="), DROP))
    arp_ip = {"concat": [iif, _payload("arp", "saddr ip")]}
    rules.append((is_arp, _match(_payload("arp", "saddr ip"), "0.0.0.0", "!="),
                  _match(arp_ip, "@" + SPOOF_IPS, "!="), _match(arp_ip, "@" + SPOOF_NETS, "!="),
                  DROP))
    rules.append((is_arp, RETURN))
    is_ip = _match(_payload("ether", "type"), "ip")
    # No DHCP server on a guest port, whatever address it claims.
    rules.append((is_ip, _match(_payload("ip", "protocol"), "udp"),
                  _match(_payload("udp", "sport"), DHCP_SERVER_PORT), DROP))
    # DHCP discovery/requests before the guest has an address.
    rules.append((is_ip, _match(_payload("ip", "saddr"), "0.0.0.0"),
                  _match(_payload("ip", "protocol"), "udp"),
                  _match(_payload("udp", "sport"), DHCP_CLIENT_PORT),
                  _match(_payload("udp", "dport"), DHCP_SERVER_PORT), RETURN))
    ip_src = {"concat": [iif, _payload("ip", "saddr")]}
    rules.append((is_ip, _match(ip_src, "@" + SPOOF_IPS), RETURN))
    rules.append((is_ip, _match(ip_src, "@" + SPOOF_NETS), RETURN))
    rules.append((DROP,))  # everything else: spoofed IPv4, IPv6, other ethertypes
    return tuple(rules)


def _groups_tag(groups: tuple[str, ...]) -> str:
    """The chains' name for a list of groups: the group's id for one, a digest for more."""
    if not groups:
        return "none"
    if len(groups) == 1:
        return _short(groups[0])
    return "x" + hashlib.sha256(",".join(groups).encode()).hexdigest()[:31]


def _group_chains(groups: tuple[str, ...], rules_by_sg: dict[str, list[SecurityGroupRule]]
                  ) -> tuple[Chain, ...]:
    out_rules: list[tuple[dict, ...]] = []
    in_rules: list[tuple[dict, ...]] = []
    # DHCP always works, whatever the groups say (as in Neutron).
    out_rules.append((_match(_payload("ip", "protocol"), "udp"),
                      _match(_payload("udp", "sport"), DHCP_CLIENT_PORT),
                      _match(_payload("udp", "dport"), DHCP_SERVER_PORT), RETURN))
    in_rules.append((_match(_payload("ip", "protocol"), "udp"),
                     _match(_payload("udp", "sport"), DHCP_SERVER_PORT),
                     _match(_payload("udp", "dport"), DHCP_CLIENT_PORT), ACCEPT))
    for sg_id in groups:
        for r in sorted(rules_by_sg.get(sg_id, []), key=lambda r: r.id):
            if r.ethertype != "IPv4":
                continue
            proto = _proto_exprs(r)
            if proto is None:
                continue
            field_ = "saddr" if r.direction == "ingress" else "daddr"
            exprs = []
            if r.remote_group_id:
                exprs.append(_match(_payload("ip", field_), "@" + remote_set(r.remote_group_id)))
            elif r.remote_ip_prefix and ipaddress.ip_network(r.remote_ip_prefix,
                                                             strict=False).prefixlen:
                exprs.append(_match(_payload("ip", field_), _addr(r.remote_ip_prefix)))
            exprs.extend(proto)
            if r.direction == "ingress":
                in_rules.append((*exprs, ACCEPT))
            else:
                out_rules.append((*exprs, RETURN))
    out_rules.append((DROP,))
    in_rules.append((DROP,))
    tag = _groups_tag(groups)
    return ((f"sg_out_{tag}", tuple(out_rules)), (f"sg_in_{tag}", tuple(in_rules)))


def guarded(port: Port) -> bool:
    """A port the firewall guards: a guest port with port security and a data-plane name."""
    return bool(port.port_security_enabled and port.tap_name
                and not port.device_owner.startswith("network:"))


def port_rules(port: Port, net: Network | None,
               rules_by_sg: dict[str, list[SecurityGroupRule]]) -> PortRules | None:
    """The port's part of the ruleset (None when the firewall does not guard it); `net` is
    its network (None if gone: then only anti-spoofing and group membership apply)."""
    if not guarded(port):
        return None
    keys: list[tuple[str, str]] = []
    chains: tuple[Chain, ...] = ()
    if net is not None:
        # the groups' order changes no verdict (every rule accepts or returns): sorted, so
        # ports listing the same groups share the chains
        chains = _group_chains(tuple(sorted(set(port.security_groups))), rules_by_sg)
        addresses = list(port.ips()) + [p["ip_address"] for p in port.allowed_address_pairs
                                        if "/" not in p["ip_address"]
                                        or p["ip_address"].endswith("/32")]
        for ip in addresses:
            key = (net.bridge, ip.split("/")[0])
            if key not in keys:
                keys.append(key)
    return PortRules(port_id=port.id, tap=port.tap_name,
                     spoof=_spoof_elements(port),
                     groups_chains=chains, keys=tuple(keys),
                     members=tuple((sg, ip) for sg in dict.fromkeys(port.security_groups)
                                   for ip in dict.fromkeys(port.ips())))


def rules_by_group(rules: list[SecurityGroupRule]) -> dict[str, list[SecurityGroupRule]]:
    out: dict[str, list[SecurityGroupRule]] = {}
    for r in rules:
        out.setdefault(r.security_group_id, []).append(r)
    return out


def referenced_groups(rules: list[SecurityGroupRule]) -> list[str]:
    """Groups some rule names as its remote group: each has a set of member addresses."""
    return sorted({r.remote_group_id for r in rules if r.remote_group_id})


def key_owners(units: list[PortRules]) -> dict[tuple[str, str], str]:
    """bridge . address → the port whose chains it reaches: an address two ports claim (an
    allowed pair) goes to the lowest port id."""
    owners: dict[tuple[str, str], str] = {}
    for unit in units:
        for key in unit.keys:
            if key not in owners or unit.port_id < owners[key]:
                owners[key] = unit.port_id
    return owners


def verdict(chain: str) -> dict:
    return _jump(chain)


def map_key(key: tuple[str, str]) -> dict:
    return {"concat": [key[0], key[1]]}


def add_chain_cmds(family: str, table: str, name: str,
                   rules: tuple[tuple[dict, ...], ...], *, new: bool) -> list[dict]:
    """Commands making chain `name` hold `rules` (added when `new`, flushed first if not)."""
    ref = {"family": family, "table": table, "name": name}
    cmds: list[dict] = [{"add": {"chain": ref}} if new else {"flush": {"chain": ref}}]
    cmds.extend({"add": {"rule": {"family": family, "table": table, "chain": name,
                                  "expr": list(exprs)}}} for exprs in rules)
    return cmds


def table_of(family: str) -> str:
    return SPOOF_TABLE if family == "bridge" else TABLE


def _units(state: FirewallState) -> list[PortRules]:
    nets = {n.id: n for n in state.networks}
    by_sg = rules_by_group(state.rules)
    units = [port_rules(p, nets.get(p.network_id), by_sg) for p in state.ports]
    return sorted((u for u in units if u is not None), key=lambda u: u.port_id)


# ---- the bridge table: anti-spoofing ---------------------------------------------------------

def _spoof_table(units: list[PortRules]) -> list[dict]:
    b = _Builder("bridge", SPOOF_TABLE)
    elements: dict[str, set[tuple[str, ...]]] = {name: set() for name in SPOOF_SETS}
    for unit in units:
        for name, key in unit.spoof:
            elements[name].add(key)
    for name, (type_, flags) in SPOOF_SETS.items():
        b.set(name, type_, [element(k) for k in sorted(elements[name])], flags)
    b.chain("prerouting", hook="prerouting", prio=-300)
    b.chain(SPOOF_CHAIN)
    for exprs in _spoof_chain():
        b.rule(SPOOF_CHAIN, *exprs)
    b.rule("prerouting", _match(_meta("iifname"), "@" + SPOOF_PORTS), _jump(SPOOF_CHAIN))
    return b.cmds


# ---- the ip table: security groups, routing, NAT -----------------------------------------------

def _proto_exprs(rule: SecurityGroupRule) -> list[dict] | None:
    """Match expressions for the rule's protocol and ports; None when the rule cannot apply."""
    proto = (rule.protocol or "").lower()
    if proto in ("", "any", "-1"):
        return []
    named = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132}
    if proto in named:
        number = named[proto]
    elif proto.isdigit():
        number = int(proto)
    else:
        return None  # e.g. ipv6-icmp in an IPv4 table
    out = [_match(_payload("ip", "protocol"), number)]
    lo, hi = rule.port_range_min, rule.port_range_max
    if number in (6, 17, 132) and lo is not None:
        name = {6: "tcp", 17: "udp", 132: "sctp"}[number]
        hi = lo if hi is None else hi
        out.append(_match(_payload(name, "dport"), lo if lo == hi else {"range": [lo, hi]}))
    elif number == 1 and lo is not None:
        out.append(_match(_payload("icmp", "type"), lo))
        if hi is not None:
            out.append(_match(_payload("icmp", "code"), hi))
    return out


def remote_set(sg_id: str) -> str:
    return f"rg_{_short(sg_id)}"


def _ip_table(state: FirewallState, units: list[PortRules]) -> list[dict]:
    b = _Builder("ip", TABLE)
    nets = {n.id: n for n in state.networks}
    subnets_by_id = {s.id: s for s in state.subnets}
    ports_by_id = {p.id: p for p in state.ports}

    # Sets of member addresses for remote_group_id rules.
    for sg_id in referenced_groups(state.rules):
        members = sorted({ip for u in units for sg, ip in u.members if sg == sg_id})
        b.set(remote_set(sg_id), "ipv4_addr", members)

    b.chain("forward", hook="forward", prio=0)
    b.chain("input", hook="input", prio=0)
    b.chain("output", hook="output", prio=0)
    b.chain("routing")
    established = _match({"ct": {"key": "state"}}, ["established", "related"], "in")
    invalid = _match({"ct": {"key": "state"}}, ["invalid"], "in")
    for chain in ("forward", "input", "output"):
        b.rule(chain, established, ACCEPT)
    b.rule("forward", invalid, DROP)
    b.rule("forward", _jump("routing"))

    # Security group chains, one pair per list of groups in use, reached through the two maps.
    chains = {name: rules for unit in units for name, rules in unit.groups_chains}
    for chain, rules in sorted(chains.items()):
        b.chain(chain)
        for exprs in rules:
            b.rule(chain, *exprs)
    by_id = {u.port_id: u for u in units}
    out_map, in_map = [], []
    for key, owner in sorted(key_owners(units).items()):
        (out_chain, _), (in_chain, _) = by_id[owner].groups_chains
        out_map.append([map_key(key), _jump(out_chain)])
        in_map.append([map_key(key), _jump(in_chain)])
    b.map(EGRESS_MAP, ["ifname", "ipv4_addr"], out_map)
    b.map(INGRESS_MAP, ["ifname", "ipv4_addr"], in_map)

    egress_key = {"concat": [_meta("iifname"), _payload("ip", "saddr")]}
    ingress_key = {"concat": [_meta("oifname"), _payload("ip", "daddr")]}
    b.rule("forward", {"vmap": {"key": egress_key, "data": "@" + EGRESS_MAP}})
    b.rule("input", {"vmap": {"key": egress_key, "data": "@" + EGRESS_MAP}})
    b.rule("forward", {"vmap": {"key": ingress_key, "data": "@" + INGRESS_MAP}})
    b.rule("output", {"vmap": {"key": ingress_key, "data": "@" + INGRESS_MAP}})

    # Routing policy: same bridge always (that is plain switching through br_netfilter).
    for net in sorted(state.networks, key=lambda n: n.bridge):
        b.rule("routing", _match(_meta("iifname"), net.bridge),
               _match(_meta("oifname"), net.bridge), RETURN)
    b.rule("routing", _match({"ct": {"key": "status"}}, "dnat", "in"), RETURN)

    b.chain("prerouting_nat", hook="prerouting", prio=-100, ctype="nat")
    b.chain("output_nat", hook="output", prio=-100, ctype="nat")
    b.chain("postrouting_nat", hook="postrouting", prio=100, ctype="nat")

    for router in sorted(state.routers, key=lambda r: r.id):
        # The router's subnets, by bridge.
        legs: dict[str, list[str]] = {}
        for p in state.ports:
            if p.device_owner == PortOwner.ROUTER_INTERFACE and p.device_id == router.id:
                net = nets.get(p.network_id)
                for f in p.fixed_ips:
                    sn = subnets_by_id.get(f["subnet_id"])
                    if net is not None and sn is not None:
                        legs.setdefault(net.bridge, []).append(sn.cidr)
        for a in sorted(legs):
            for z in sorted(legs):
                if a != z:
                    b.rule("routing", _match(_meta("iifname"), a), _match(_meta("oifname"), z),
                           _match(_payload("ip", "saddr"), _set([_addr(c) for c in legs[a]])),
                           _match(_payload("ip", "daddr"), _set([_addr(c) for c in legs[z]])),
                           RETURN)
        gw = ports_by_id.get(router.gateway_port_id or "")
        ext = nets.get(router.gateway_network_id or "")
        if gw is None or ext is None or not gw.fixed_ips:
            continue
        for a in sorted(legs):
            if a == ext.bridge:
                continue
            src = _match(_payload("ip", "saddr"), _set([_addr(c) for c in legs[a]]))
            b.rule("routing", _match(_meta("iifname"), a), _match(_meta("oifname"), ext.bridge),
                   src, RETURN)
            if router.enable_snat:
                b.rule("postrouting_nat", _match(_meta("iifname"), a),
                       _match(_meta("oifname"), ext.bridge), src,
                       {"snat": {"addr": gw.fixed_ips[0]["ip_address"]}})
    b.rule("routing", DROP)

    # Floating IPs: 1:1 DNAT in, SNAT out (before the routers' SNAT: rules are inserted first).
    fip_snat = []
    for fip in sorted(state.floatingips, key=lambda f: f.id):
        port = ports_by_id.get(fip.port_id or "")
        ext = nets.get(fip.floating_network_id)
        if port is None or ext is None or not fip.fixed_ip_address:
            continue
        inner = nets.get(port.network_id)
        if inner is None:
            continue
        for chain in ("prerouting_nat", "output_nat"):
            b.rule(chain, _match(_payload("ip", "daddr"), fip.floating_ip_address),
                   {"dnat": {"addr": fip.fixed_ip_address}})
        fip_snat.append((inner.bridge, ext.bridge, fip))
    for inner_bridge, ext_bridge, fip in fip_snat:
        b.cmds.append({"insert": {"rule": {
            "family": "ip", "table": TABLE, "chain": "postrouting_nat",
            "expr": [_match(_meta("iifname"), inner_bridge), _match(_meta("oifname"), ext_bridge),
                     _match(_payload("ip", "saddr"), fip.fixed_ip_address),
                     {"snat": {"addr": fip.floating_ip_address}}]}}})
    return b.cmds


def build_ruleset(state: FirewallState) -> dict[str, Any]:
    """The complete ruleset for the namespace as nft JSON."""
    return build(state)[0]


def build(state: FirewallState) -> tuple[dict[str, Any], list[PortRules]]:
    """The complete ruleset, and the ports' parts it holds (for later changes of one port)."""
    units = _units(state)
    return ({"nftables": [{"metainfo": {"json_schema_version": 1}},
                          *_spoof_table(units), *_ip_table(state, units)]}, units)
