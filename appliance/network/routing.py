"""Routers and floating IPs: a router joins subnets (its interfaces) and reaches an external
network (its gateway, SNAT); a floating IP is an external address NATed 1:1 to a port's fixed
address. Both are records here and rules in the data plane's ruleset (network/rules.py), made
by the next sync.

It is handed what it uses, not the manager (`NetworkManager`, its facade, wires it): the
records (tables.py), the manager's one lock, so a gateway or floating address can never be
handed out twice, the ports (port_writer.py), the shared quotas and the data plane's sync.
"""
from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.errors import BadRequest, Conflict, Forbidden, NotFound
from appliance.identity.policy import network_visible
from appliance.network import ipam
from appliance.network.port_writer import PortWriter
from appliance.network.records import (
    FloatingIP,
    Network,
    Port,
    PortOwner,
    Router,
    Subnet,
    now_iso,
)
from appliance.network.tables import NetworkTables
from appliance.quota import Quotas, Reservation


class Routing:
    def __init__(self, tables: NetworkTables, lock: asyncio.Lock, ports: PortWriter,
                 quotas: Quotas, sync: Callable[[], Awaitable[None]], *,
                 external_cidr: str) -> None:
        """external_cidr: the external network's subnet when it has none of its own."""
        self.t, self.lock, self.port_writer = tables, lock, ports
        self.quotas, self.sync, self.external_cidr = quotas, sync, external_cidr

    def _reserve(self, project_id: str, resource: str) -> Reservation:
        return self.quotas.reserve(project_id, {resource: 1})

    async def _external_subnet_locked(self, net: Network) -> list[Subnet]:
        """The external network's subnets; one from config.network.external_cidr if none."""
        subnets = self.t.subnets.list(lambda s: s.network_id == net.id)
        if subnets:
            return subnets
        cidr = ipam.parse_cidr(self.external_cidr)
        gateway = str(cidr.network_address + 1)
        ts = now_iso()
        sn = Subnet(id=str(uuid.uuid4()), name=f"{net.name or 'external'}-subnet",
                    network_id=net.id, project_id=net.project_id, cidr=str(cidr),
                    gateway_ip=gateway, allocation_pools=ipam.default_pools(cidr, [gateway]),
                    enable_dhcp=False, created_at=ts, updated_at=ts)
        await self.t.subnets.save(sn)
        return [sn]

    async def create_router(self, project_id: str, *, name: str = "", admin_state_up: bool = True,
                            description: str = "", external_gateway_info: dict | None = None,
                            tags: list[str] | None = None, is_admin: bool = False) -> Router:
        async with self.lock, self._reserve(project_id, "router") as held:
            ts = now_iso()
            router = Router(id=str(uuid.uuid4()), name=name, project_id=project_id,
                            admin_state_up=admin_state_up, description=description,
                            tags=list(tags or []), created_at=ts, updated_at=ts)
            if external_gateway_info:
                await self._set_gateway_locked(router, external_gateway_info, is_admin)
            await held.store(self.t.routers.save(router))
        await self.sync()
        return router

    async def _set_gateway_locked(self, router: Router, info: dict | None, is_admin: bool) -> None:
        if router.gateway_port_id:
            if info and info.get("network_id") == router.gateway_network_id \
                    and not info.get("external_fixed_ips"):
                router.enable_snat = info.get("enable_snat", router.enable_snat) is not False
                return
            if self.t.floatingips.list(lambda f: f.router_id == router.id):
                raise Conflict(f"Gateway cannot be updated for router {router.id}, since a "
                               f"gateway to external network is required by floating IPs.")
            if self.t.ports.get(router.gateway_port_id):
                await self.port_writer.delete_port_locked(router.gateway_port_id, internal=True)
            router.gateway_port_id = router.gateway_network_id = None
        if not info or not info.get("network_id"):
            return
        net = self.t.networks.get(info["network_id"])
        if net is None:
            raise NotFound(f"Network {info['network_id']} could not be found.")
        if not net.external:
            raise BadRequest(f"Network {net.id} is not an external network")
        await self._external_subnet_locked(net)
        fixed = info.get("external_fixed_ips") or None
        if fixed and not is_admin:
            raise Forbidden("Only admins may choose a router's external address.")
        port = await self.port_writer.create_port_locked(
            "", net.id, is_admin=True, fixed_ips=fixed, device_id=router.id,
            device_owner=PortOwner.ROUTER_GATEWAY)
        router.gateway_network_id, router.gateway_port_id = net.id, port.id
        router.enable_snat = info.get("enable_snat", True) is not False

    async def update_router(self, router: Router, changes: dict[str, Any], *,
                            is_admin: bool = False) -> Router:
        async with self.lock:
            router = self.t.routers.require(router.id)
            for key in ("name", "admin_state_up", "description", "tags"):
                if key in changes:
                    setattr(router, key, changes[key])
            if "external_gateway_info" in changes:
                await self._set_gateway_locked(router, changes["external_gateway_info"], is_admin)
            router.updated_at, router.revision_number = now_iso(), router.revision_number + 1
            await self.t.routers.save(router)
        await self.sync()
        return router

    async def delete_router(self, router_id: str) -> None:
        async with self.lock:
            router = self.t.routers.require(router_id)
            if self.t.ports.list(lambda p: p.device_id == router.id
                                 and p.device_owner == PortOwner.ROUTER_INTERFACE):
                raise Conflict(f"Router {router.id} still has ports")
            if self.t.floatingips.list(lambda f: f.router_id == router.id):
                raise Conflict(f"Router {router.id} is still used by floating IPs")
            if router.gateway_port_id and self.t.ports.get(router.gateway_port_id):
                await self.port_writer.delete_port_locked(router.gateway_port_id, internal=True)
            await self.t.routers.delete(router.id)
        await self.sync()

    def router_interfaces(self, router_id: str) -> list[Port]:
        return self.t.ports.list(lambda p: p.device_id == router_id
                                 and p.device_owner == PortOwner.ROUTER_INTERFACE)

    def _check_router_overlap(self, router: Router, sn: Subnet) -> None:
        """One router routes between its subnets, so no two of them (its gateway's included) may
        overlap: the README's rule, and Neutron's (a router can't tell which side owns an address)."""
        mine = ipaddress.IPv4Network(sn.cidr)
        ports = self.router_interfaces(router.id)
        if router.gateway_port_id and (gw := self.t.ports.get(router.gateway_port_id)):
            ports.append(gw)
        for p in ports:
            for f in p.fixed_ips:
                other = self.t.subnets.get(f["subnet_id"])
                if other is None or other.id == sn.id:
                    continue
                if ipaddress.IPv4Network(other.cidr).overlaps(mine):
                    raise BadRequest(f"Bad router request: Cidr {sn.cidr} of subnet {sn.id} "
                                     f"overlaps with cidr {other.cidr} of subnet {other.id}.")

    async def add_router_interface(self, router: Router, *, subnet_id: str | None = None,
                                   port_id: str | None = None, project_id: str,
                                   is_admin: bool = False) -> tuple[Port, Subnet]:
        if bool(subnet_id) == bool(port_id):
            raise BadRequest("Either subnet_id or port_id must be specified")
        async with self.lock:
            if subnet_id:
                sn = self.t.subnets.require(subnet_id)
                net = self.t.networks.require(sn.network_id)
                if not network_visible(net, project_id, is_admin) or (
                        net.project_id != project_id and not is_admin and not net.shared):
                    raise NotFound(f"Subnet {subnet_id} could not be found.")
                if not sn.gateway_ip:
                    raise BadRequest(f"Bad router request: Subnet {sn.id} does not have a "
                                     f"gateway IP.")
                for p in self.t.ports.list(lambda p: p.device_owner == PortOwner.ROUTER_INTERFACE):
                    if any(f["subnet_id"] == sn.id for f in p.fixed_ips):
                        raise BadRequest(f"Bad router request: Router already has a port on "
                                         f"subnet {sn.id}." if p.device_id == router.id else
                                         f"Subnet {sn.id} is already attached to router "
                                         f"{p.device_id}.")
                self._check_router_overlap(router, sn)
                port = await self.port_writer.create_port_locked(
                    router.project_id, net.id, is_admin=True,
                    fixed_ips=[{"subnet_id": sn.id, "ip_address": sn.gateway_ip}],
                    device_id=router.id, device_owner=PortOwner.ROUTER_INTERFACE)
            else:
                port = self.t.ports.require(port_id)  # type: ignore[arg-type]
                if port.project_id != project_id and not is_admin:
                    raise NotFound(f"Port {port_id} could not be found.")
                if port.device_id or port.device_owner:
                    raise Conflict(f"Port {port.id} is in use by {port.device_owner or 'a device'}.")
                if not port.fixed_ips:
                    raise BadRequest("Bad router request: Router port must have at least "
                                     "one fixed IP")
                sn = self.t.subnets.require(port.fixed_ips[0]["subnet_id"])
                self._check_router_overlap(router, sn)
                port.device_id, port.device_owner = router.id, PortOwner.ROUTER_INTERFACE
                port.port_security_enabled, port.security_groups = False, []
                port.allowed_address_pairs, port.status = [], "ACTIVE"
                port.updated_at, port.revision_number = now_iso(), port.revision_number + 1
                await self.t.ports.save(port)
        await self.sync()
        return port, sn

    async def remove_router_interface(self, router: Router, *, subnet_id: str | None = None,
                                      port_id: str | None = None) -> tuple[Port, Subnet]:
        if not subnet_id and not port_id:
            raise BadRequest("Either subnet_id or port_id must be specified")
        async with self.lock:
            ifaces = self.router_interfaces(router.id)
            if port_id:
                port = next((p for p in ifaces if p.id == port_id), None)
            else:
                port = next((p for p in ifaces
                             if any(f["subnet_id"] == subnet_id for f in p.fixed_ips)), None)
            if port is None:
                raise NotFound(f"Router {router.id} does not have an interface with "
                               f"{'port ' + port_id if port_id else 'subnet ' + str(subnet_id)}")
            sn = self.t.subnets.require(port.fixed_ips[0]["subnet_id"])
            cidr = ipaddress.IPv4Network(sn.cidr)
            for fip in self.t.floatingips.list(lambda f: f.router_id == router.id):
                if fip.fixed_ip_address and ipaddress.IPv4Address(fip.fixed_ip_address) in cidr:
                    raise Conflict(f"Router interface for subnet {sn.id} on router {router.id} "
                                   f"cannot be deleted, as it is required by one or more "
                                   f"floating IPs.")
            await self.port_writer.delete_port_locked(port.id, internal=True)
        await self.sync()
        return port, sn

    # ---- floating IPs --------------------------------------------------------------------

    def _router_for(self, ext_network_id: str, port: Port, fixed_ip: str) -> Router:
        subnet_id = next(f["subnet_id"] for f in port.fixed_ips if f["ip_address"] == fixed_ip)
        for router in self.t.routers.list(lambda r: r.gateway_network_id == ext_network_id):
            if any(any(f["subnet_id"] == subnet_id for f in p.fixed_ips)
                   for p in self.router_interfaces(router.id)):
                return router
        raise NotFound(f"External network {ext_network_id} is not reachable from subnet "
                       f"{subnet_id}. Therefore, cannot associate Port {port.id} with a "
                       f"Floating IP.")

    def _associate_locked(self, fip: FloatingIP, port_id: str | None, fixed_ip: str | None,
                          project_id: str, is_admin: bool) -> None:
        if not port_id:
            fip.port_id = fip.fixed_ip_address = fip.router_id = None
            fip.status = "DOWN"
            return
        port = self.t.ports.get(port_id)
        if port is None or (port.project_id != fip.project_id and not is_admin):
            raise NotFound(f"Port {port_id} could not be found.")
        ips = port.ips()
        if not ips:
            raise BadRequest(f"Port {port.id} does not have any IPv4 fixed IP.")
        if fixed_ip is None:
            fixed_ip = ips[0]
        elif fixed_ip not in ips:
            raise BadRequest(f"Port {port.id} does not have fixed ip {fixed_ip}")
        for other in self.t.floatingips.list(lambda f: f.port_id == port.id and f.id != fip.id):
            if other.fixed_ip_address == fixed_ip:
                raise Conflict(f"Cannot associate floating IP {fip.floating_ip_address} with "
                               f"port {port.id} using fixed IP {fixed_ip}, as that fixed IP "
                               f"already has a floating IP on external network "
                               f"{other.floating_network_id}.")
        router = self._router_for(fip.floating_network_id, port, fixed_ip)
        fip.port_id, fip.fixed_ip_address, fip.router_id = port.id, fixed_ip, router.id
        fip.status = "ACTIVE"

    async def create_floatingip(self, project_id: str, floating_network_id: str, *,
                                is_admin: bool = False, port_id: str | None = None,
                                fixed_ip_address: str | None = None,
                                floating_ip_address: str | None = None, description: str = "",
                                tags: list[str] | None = None) -> FloatingIP:
        async with self.lock, self._reserve(project_id, "floatingip") as held:
            net = self.t.networks.get(floating_network_id)
            if net is None:
                raise NotFound(f"Network {floating_network_id} could not be found.")
            if not net.external:
                raise BadRequest(f"Bad floatingip request: Network {net.id} is not a valid "
                                 f"external network.")
            await self._external_subnet_locked(net)
            if floating_ip_address and not is_admin:
                raise Forbidden("Only admins may choose a floating IP address.")
            fixed = [{"ip_address": floating_ip_address}] if floating_ip_address else None
            ts = now_iso()
            fid = str(uuid.uuid4())
            fip = FloatingIP(id=fid, project_id=project_id, floating_network_id=net.id,
                             floating_ip_address="", floating_port_id="",
                             description=description, tags=list(tags or []), created_at=ts,
                             updated_at=ts)
            self._associate_locked(fip, port_id, fixed_ip_address, project_id, is_admin)
            port = await self.port_writer.create_port_locked(
                "", net.id, is_admin=True, fixed_ips=fixed, device_id=fid,
                device_owner=PortOwner.FLOATINGIP,
                extra_ops=None)
            fip.floating_ip_address = port.fixed_ips[0]["ip_address"]
            fip.floating_port_id = port.id
            await held.store(self.t.floatingips.save(fip))
        await self.sync()
        return fip

    async def update_floatingip(self, fip: FloatingIP, changes: dict[str, Any], *,
                                project_id: str, is_admin: bool = False) -> FloatingIP:
        async with self.lock:
            fip = self.t.floatingips.require(fip.id)
            if "port_id" in changes:
                self._associate_locked(fip, changes["port_id"], changes.get("fixed_ip_address"),
                                       project_id, is_admin)
            for key in ("description", "tags"):
                if key in changes:
                    setattr(fip, key, changes[key])
            fip.updated_at, fip.revision_number = now_iso(), fip.revision_number + 1
            await self.t.floatingips.save(fip)
        await self.sync()
        return fip

    async def delete_floatingip(self, fip_id: str) -> None:
        async with self.lock:
            fip = self.t.floatingips.require(fip_id)
            ops = [self.t.floatingips.delete_op(fip.id)]
            if self.t.ports.get(fip.floating_port_id):
                ops.append(self.t.ports.delete_op(fip.floating_port_id))
            await self.t.store.commit(ops)
        await self.sync()
