"""The network's side of the metadata service: which guest is asking, and where it listens.

The manager calls `rebuild()` whenever it rebuilds its DHCP reservations (same records, same
moment), and `sync(bridges)` after the bridges exist. The index maps (bridge, source address)
to the instance whose port holds that fixed IP; an address another port on the network may
also use (an allowed address pair) is never resolved, so a guest can never be taken for
another. A change of guest ports alone updates their entries (`update_ports`).
Instance documents come from compute through its seam (`instance_metadata`,
`set_instance_password`, appliance/seams.py ComputeForNetwork); compute may be absent, and then every
guest gets 404.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from appliance.errors import MonostackError
from appliance.metadata.server import (
    METADATA_ADDRESS,
    METADATA_PORT,
    Limits,
    MetadataClient,
    MetadataServer,
)
from appliance.network.netlink import DataPlane
from appliance.network.records import FloatingIP, Network, Port
from appliance.seams import ComputeForNetwork

log = logging.getLogger("monostack.network")

#: the host route option 121 hands to guests on subnets no router serves
METADATA_ROUTE = f"{METADATA_ADDRESS}/32"


class NetworkMetadata:
    def __init__(self, dp: DataPlane, network_data: Any,
                 compute: Callable[[], ComputeForNetwork | None] = lambda: None,
                 limits: Limits | None = None) -> None:
        self.compute = compute
        self.dp = dp
        self._index: dict[str, dict[str, str]] = {}
        self._floating: dict[tuple[str, str], str] = {}
        #: addresses another port may also use (allowed address pairs): never resolved
        self._contested: Counter[tuple[str, str]] = Counter()
        self._address_ready = False
        self.server = MetadataServer(self.resolve, self.content, network_data=network_data,
                                     set_password=self.set_password, limits=limits)

    # ---- who is asking -----------------------------------------------------------------------

    def rebuild(self, networks: dict[str, Network], ports: Iterable[Port],
                floatingips: Iterable[FloatingIP]) -> None:
        # Per bridge, address -> instance id, holding the records' own strings: the index
        # costs one dict slot per guest address and nothing else (memory flat with instances).
        floating = {(f.port_id, f.fixed_ip_address): f.floating_ip_address
                    for f in floatingips if f.port_id}
        self._index, self._floating, self._contested = {}, {}, Counter()
        for port in ports:
            self._add(networks, port, 1)
            net = networks.get(port.network_id)
            if net is not None and port.device_owner.startswith("compute:") and port.device_id:
                for f in port.fixed_ips:
                    if (port.id, f["ip_address"]) in floating:
                        self._floating[(net.bridge, f["ip_address"])] = floating[
                            (port.id, f["ip_address"])]

    def update_ports(self, networks: dict[str, Network],
                     changes: Iterable[tuple[Port | None, Port | None]]) -> None:
        """Guest ports changed (old, new; None when absent), nothing else: their entries only
        (a port a floating IP points at is a full rebuild: the caller's rule)."""
        changes = list(changes)
        for old, _ in changes:
            if old is not None:
                self._add(networks, old, -1)
        for _, new in changes:
            if new is not None:
                self._add(networks, new, 1)

    def _add(self, networks: dict[str, Network], port: Port, sign: int) -> None:
        net = networks.get(port.network_id)
        if net is None:
            return
        for pair in port.allowed_address_pairs:
            key = (net.bridge, pair["ip_address"].split("/")[0])
            self._contested[key] += sign
            if self._contested[key] <= 0:
                del self._contested[key]
        if not (port.device_owner.startswith("compute:") and port.device_id):
            return
        by_ip = self._index.setdefault(net.bridge, {})
        for f in port.fixed_ips:
            ip = f["ip_address"]
            if sign > 0:
                by_ip[ip] = port.device_id
            elif by_ip.get(ip) == port.device_id:
                del by_ip[ip]

    def resolve(self, bridge: str, source: str) -> MetadataClient | None:
        instance_id = self._index.get(bridge, {}).get(source)
        if instance_id is None or self._contested.get((bridge, source)):
            return None
        return MetadataClient(instance_id=instance_id, fixed_ip=source,
                              floating_ip=self._floating.get((bridge, source)))

    def content(self, instance_id: str) -> Any:
        compute = self.compute()
        return None if compute is None else compute.instance_metadata(instance_id)

    async def set_password(self, instance_id: str, value: str) -> bool:
        compute = self.compute()
        return False if compute is None else await compute.set_instance_password(instance_id,
                                                                                 value)

    # ---- where it listens --------------------------------------------------------------------

    async def sync(self, bridges: set[str]) -> None:
        """Listen on every bridge in `bridges` and on no other."""
        if not self._address_ready:
            await self.dp.add_address("lo", METADATA_ROUTE)
            self._address_ready = True
        for bridge in self.server.bridges - bridges:
            await self.server.unlisten(bridge)
        for bridge in sorted(bridges - self.server.bridges):
            try:
                sock = await self.dp.tcp_listener_in_namespace(bridge, METADATA_ADDRESS,
                                                               METADATA_PORT)
            except MonostackError as exc:
                log.warning("metadata: cannot listen on %s: %s", bridge, exc)
                continue
            await self.server.listen(bridge, sock)

    async def stop(self) -> None:
        await self.server.stop()
