"""The network's side of the metadata service: which guest is asking, and where it listens.

The manager calls `rebuild()` whenever it rebuilds its DHCP reservations (same records, same
moment), and `sync(bridges)` after the bridges exist. The index maps (bridge, source address)
to the instance whose port holds that fixed IP; an address another port on the network may
also use (an allowed address pair) is left out, so a guest can never be taken for another.
Instance documents come from compute through its seam (`instance_metadata`,
`set_instance_password`, appliance/compute/seams.py); compute may be absent, and then every
guest gets 404.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from appliance.component import ApplianceContext
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

log = logging.getLogger("monostack.network")

#: the host route option 121 hands to guests on subnets no router serves
METADATA_ROUTE = f"{METADATA_ADDRESS}/32"


class NetworkMetadata:
    def __init__(self, ctx: ApplianceContext, dp: DataPlane, network_data: Any,
                 limits: Limits | None = None) -> None:
        self.ctx = ctx
        self.dp = dp
        self._index: dict[tuple[str, str], MetadataClient] = {}
        self._address_ready = False
        self.server = MetadataServer(self.resolve, self.content, network_data=network_data,
                                     set_password=self.set_password, limits=limits)

    # ---- who is asking -----------------------------------------------------------------------

    def rebuild(self, networks: dict[str, Network], ports: Iterable[Port],
                floatingips: Iterable[FloatingIP]) -> None:
        floating = {(f.port_id, f.fixed_ip_address): f.floating_ip_address
                    for f in floatingips if f.port_id}
        index: dict[tuple[str, str], MetadataClient] = {}
        contested: set[tuple[str, str]] = set()
        for port in ports:
            net = networks.get(port.network_id)
            if net is None:
                continue
            for pair in port.allowed_address_pairs:
                contested.add((net.bridge, pair["ip_address"].split("/")[0]))
            if not (port.device_owner.startswith("compute:") and port.device_id):
                continue
            for ip in port.ips():
                index[(net.bridge, ip)] = MetadataClient(
                    instance_id=port.device_id, fixed_ip=ip,
                    floating_ip=floating.get((port.id, ip)))
        for key in contested:
            index.pop(key, None)
        self._index = index

    def resolve(self, bridge: str, source: str) -> MetadataClient | None:
        return self._index.get((bridge, source))

    def content(self, instance_id: str) -> Any:
        compute = self.ctx.components.get("compute")
        if compute is None or not hasattr(compute, "instance_metadata"):
            return None
        return compute.instance_metadata(instance_id)

    async def set_password(self, instance_id: str, value: str) -> bool:
        compute = self.ctx.components.get("compute")
        if compute is None or not hasattr(compute, "set_instance_password"):
            return False
        return await compute.set_instance_password(instance_id, value)

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
