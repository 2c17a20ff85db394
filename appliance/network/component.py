"""The network component: Neutron v2.0 subset, data-plane namespace, in-process DHCP.

Also the `NetworkSeam` compute calls (allocate_ports, plug, deallocate_ports, plus
deallocate_port and network_data), delegated to the manager.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from appliance.component import ApplianceContext, CatalogEntry
from appliance.network import metrics as network_metrics
from appliance.network.manager import NetworkManager
from appliance.seams import ComputeForNetwork, PortBinding

log = logging.getLogger("monostack.network")


class NetworkComponent:
    name = "network"
    catalog = [CatalogEntry(type="network", name="neutron", path="/network")]

    def __init__(self, ctx: ApplianceContext, *,
                 compute: Callable[[], ComputeForNetwork | None] = lambda: None,
                 dataplane: bool = True, lease_time: int = 86400,
                 dns_domain: str = "monostack.local") -> None:
        self.ctx = ctx
        self.manager = NetworkManager(ctx.store, ctx.config.network, ctx.quotas, ctx.events,
                                      compute=compute, dataplane=dataplane,
                                      lease_time=lease_time, dns_domain=dns_domain)
        network_metrics.register(ctx.metrics, self)
        self._starting: asyncio.Task[None] | None = None
        #: why the data plane could not be built at start (None: it was, or is being)
        self.start_error: str | None = None

    async def start(self) -> None:
        """Returns at once: the data plane (pyroute2's import, the namespace, bridges, DHCP
        listeners, nftables) is built in the background while the API answers from the
        records; compute waits for it (settled) before any guest is started or plugged."""
        self._starting = asyncio.create_task(self._build_dataplane(), name="network-start")

    async def _build_dataplane(self) -> None:
        try:
            await self.manager.start()
        except Exception as exc:
            log.exception("the network data plane could not be built")
            self.start_error = str(exc)

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        await self.manager.stop()

    async def bootstrap(self, admin_project: Any) -> None:
        await self.manager.bootstrap(admin_project.id)

    async def settled(self) -> None:
        """Until the data plane is built (or failed to be)."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    def health(self) -> str:
        if self._starting is not None and not self._starting.done():
            return "starting: building the data plane (namespace, bridges, DHCP, nftables)"
        if self.start_error is not None:
            return f"failed: the data plane could not be built: {self.start_error}"
        return self.manager.health()

    # ---- NetworkSeam -------------------------------------------------------------------------

    def check_requested_networks(self, project_id: str,
                                 requested_networks: list[dict[str, Any]]) -> None:
        self.manager.binding.check_requested_networks(project_id, requested_networks)

    async def allocate_ports(self, instance_id: str, project_id: str,
                             requested_networks: list[dict[str, Any]],
                             security_groups: list[str] | None = None) -> list[PortBinding]:
        return await self.manager.binding.allocate_ports(instance_id, project_id,
                                                         requested_networks, security_groups)

    async def change_instance_security_group(self, instance_id: str, project_id: str, *,
                                             add: str | None = None,
                                             remove: str | None = None) -> list[str]:
        return await self.manager.binding.change_instance_security_group(
            instance_id, project_id, add=add, remove=remove)

    def instance_security_groups(self, instance_id: str) -> list:
        return self.manager.binding.instance_security_groups(instance_id)

    def floating_addresses(self) -> dict[str, dict[str, list[str]]]:
        return self.manager.binding.floating_addresses()

    async def plug(self, tap_name: str, port_id: str) -> None:
        await self.manager.binding.plug(tap_name, port_id)

    async def deallocate_ports(self, instance_id: str) -> None:
        await self.manager.binding.deallocate_ports(instance_id)

    async def deallocate_port(self, port_id: str) -> None:
        await self.manager.binding.deallocate_port(port_id)

    async def network_data(self, instance_id: str) -> dict[str, Any]:
        return await self.manager.binding.network_data(instance_id)
