"""IP address management and MAC generation: pure functions over the records.

No duplicates under concurrency is the manager's part of the bargain: it calls these under one
asyncio lock and persists the port in the same store transaction, so "used" is always complete.
"""
from __future__ import annotations

import ipaddress
import random
import socket
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

from appliance.errors import BadRequest, Conflict, Invalid
from appliance.network.records import Port, Subnet
from appliance.state.index import Tally

MAC_PREFIX = "fa:16:3e"


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise Invalid(f"Invalid input for cidr: '{cidr}' is not a valid IP subnet.") from exc
    if net.version != 4:
        raise Invalid("Only IPv4 subnets are supported.")
    if net.prefixlen > 30:
        raise Invalid(f"Subnet {cidr} is too small (at most /30).")
    return net  # type: ignore[return-value]


def parse_ip(value: str, what: str = "IP address") -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError as exc:
        raise Invalid(f"Invalid input: '{value}' is not a valid {what}.") from exc
    if ip.version != 4:
        raise Invalid(f"Only IPv4 addresses are supported ({value}).")
    return ip  # type: ignore[return-value]


def default_pools(net: ipaddress.IPv4Network, reserved: Iterable[str | None]) -> list[dict[str, str]]:
    """Every host address except the reserved ones (gateway / DHCP address), as ranges."""
    skip = {ipaddress.IPv4Address(r) for r in reserved if r}
    pools: list[dict[str, str]] = []
    start = prev = None
    for ip in net.hosts():
        if ip in skip:
            if start is not None:
                pools.append({"start": str(start), "end": str(prev)})
                start = None
            continue
        if start is None:
            start = ip
        prev = ip
    if start is not None:
        pools.append({"start": str(start), "end": str(prev)})
    return pools


def validate_pools(net: ipaddress.IPv4Network, pools: list[dict[str, str]],
                   gateway: str | None) -> list[dict[str, str]]:
    out = []
    ranges = []
    for pool in pools:
        if not isinstance(pool, dict) or "start" not in pool or "end" not in pool:
            raise BadRequest("allocation_pools entries need 'start' and 'end'.")
        start, end = parse_ip(pool["start"]), parse_ip(pool["end"])
        if start not in net or end not in net or start > end:
            raise BadRequest(f"The allocation pool {start}-{end} spans beyond the subnet "
                             f"cidr {net} or is reversed.")
        if start == net.network_address or end == net.broadcast_address:
            raise BadRequest("Allocation pools may not hold the network or broadcast address.")
        if gateway and start <= ipaddress.IPv4Address(gateway) <= end:
            raise Conflict(f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.")
        for s, e in ranges:
            if start <= e and s <= end:
                raise BadRequest(f"Found overlapping allocation pools: {s}-{e} and {start}-{end}.")
        ranges.append((start, end))
        out.append({"start": str(start), "end": str(end)})
    return out


def in_pools(ip: ipaddress.IPv4Address, subnet: Subnet) -> bool:
    return any(ipaddress.IPv4Address(p["start"]) <= ip <= ipaddress.IPv4Address(p["end"])
               for p in subnet.allocation_pools)


def used_addresses(subnet: Subnet, taken: Iterable[str]) -> set[str]:
    """The subnet's taken addresses: its ports' (`taken`), its gateway and DHCP address."""
    used = set(taken)
    if subnet.gateway_ip:
        used.add(subnet.gateway_ip)
    if subnet.dhcp_address:
        used.add(subnet.dhcp_address)
    return used


class AddressIndex(Tally[dict[str, Counter[str]]]):
    """subnet id → the addresses its ports hold (with how many ports hold each), kept
    current by the store (Store.watch) at O(1) per change: building the set from every port
    of the network made the thousandth port's create pay for the other 999.

    It also keeps, per subnet, a floor below which every pool address is taken (the last
    address handed out, lowered when a port lets one go), so finding the lowest free address
    does not walk past the 999 taken ones each time. The floor holds for one layout of the
    subnet (pools, gateway, DHCP address); another layout walks from the start again."""

    def __init__(self, store: Any, table: str) -> None:
        self._floors: dict[str, tuple[tuple, int]] = {}
        super().__init__(store, table)

    def allocate(self, subnet: Subnet) -> str | None:
        """The lowest free address of the subnet's pools (as `allocate`), or None."""
        layout = _layout(subnet)
        floor = self._floors.get(subnet.id)
        start = floor[1] if floor is not None and floor[0] == layout else 0
        got = allocate(subnet, used_addresses(subnet, self.taken(subnet.id)), start=start)
        if got is not None:
            self._floors[subnet.id] = (layout, _int(got))
        return got

    def taken(self, subnet_id: str, *, besides_port: str | None = None) -> set[str]:
        """The subnet's addresses held by ports (other than `besides_port`)."""
        held = self._built().get(subnet_id, Counter())
        if besides_port is None:
            return set(held)
        own = self._store.get(self._table, besides_port)
        mine = Counter(f["ip_address"] for f in (own or {}).get("fixed_ips", [])
                       if f["subnet_id"] == subnet_id)
        return {ip for ip, n in held.items() if n > mine.get(ip, 0)}

    def _new(self) -> dict[str, Counter[str]]:
        return {}

    def _fold(self, state: dict[str, Counter[str]], doc: dict[str, Any], sign: int) -> None:
        for f in doc.get("fixed_ips") or []:
            held = state.setdefault(f["subnet_id"], Counter())
            held[f["ip_address"]] += sign
            if held[f["ip_address"]] <= 0:
                del held[f["ip_address"]]
                floor = self._floors.get(f["subnet_id"])
                if floor is not None and _int(f["ip_address"]) < floor[1]:
                    self._floors[f["subnet_id"]] = (floor[0], _int(f["ip_address"]))


def _int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def _layout(subnet: Subnet) -> tuple:
    return (tuple((p["start"], p["end"]) for p in subnet.allocation_pools),
            subnet.gateway_ip, subnet.dhcp_address)


def allocate(subnet: Subnet, used: set[str], start: int = 0) -> str | None:
    """The lowest free address of the subnet's pools, or None when they are exhausted; the
    walk begins at `start` (an address as an integer) when every one below it is used."""
    for pool in subnet.allocation_pools:
        first = max(start, int(ipaddress.IPv4Address(pool["start"])))
        end = int(ipaddress.IPv4Address(pool["end"]))
        for n in range(first, end + 1):
            # inet_ntoa: the walk passes every taken address, and IPv4Address made the
            # thousandth port's allocation cost 10 ms
            candidate = socket.inet_ntoa(n.to_bytes(4, "big"))
            if candidate not in used:
                return candidate
    return None


def reserve(subnet: Subnet, ip: str, used: set[str], *, service: bool = False) -> str:
    """Check a requested fixed IP: inside the subnet, not the network/broadcast, not taken.

    Service ports (router interfaces) may take the gateway address; nobody may take a used one.
    """
    addr = parse_ip(ip)
    net = ipaddress.IPv4Network(subnet.cidr)
    if addr not in net or addr in (net.network_address, net.broadcast_address):
        raise BadRequest(f"IP address {ip} is not a valid IP for the specified subnet.")
    taken = set(used)
    if service and ip == subnet.gateway_ip:
        taken.discard(ip)
    if str(addr) in taken:
        raise Conflict(f"IP address {ip} already allocated in subnet {subnet.id}")
    return str(addr)


def normalize_mac(mac: str) -> str:
    parts = mac.replace("-", ":").lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                  for p in parts):
        raise Invalid(f"Invalid input for mac_address: '{mac}' is not a valid MAC address.")
    if int(parts[0], 16) & 1:
        raise Invalid(f"mac_address {mac} is a multicast address.")
    return ":".join(parts)


def generate_mac(existing: Collection[str], rng: random.Random | None = None) -> str:
    """A fa:16:3e:xx:xx:xx address no existing port has (16.7 M choices; give up after 100)."""
    rng = rng or random.SystemRandom()
    for _ in range(100):
        tail = rng.getrandbits(24)
        mac = f"{MAC_PREFIX}:{tail >> 16:02x}:{(tail >> 8) & 0xff:02x}:{tail & 0xff:02x}"
        if mac not in existing:
            return mac
    raise Conflict("Unable to generate a unique mac address.")
