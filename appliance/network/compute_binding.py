"""Network's side of compute: the ports an instance gets, their taps plugged into the data
plane, their security groups, and the network_data of its config drive and metadata service
(appliance/seams.py NetworkSeam — what compute asks of network).

It is handed what it uses, not the manager (`NetworkManager`, its facade, wires it): the
records (tables.py), the manager's one lock, so a port allocated here can never take an
address or MAC another request holds, the ports (port_writer.py), the data plane's taps
(`Taps`, None without a data plane), the event bus and the data plane's sync.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from appliance.errors import BadRequest, Conflict, NotFound
from appliance.events import EventBus
from appliance.network.port_writer import PortWriter
from appliance.network.records import Network, Port, SecurityGroup, now_iso
from appliance.network.tables import NetworkTables
from appliance.seams import GroupRule, InstanceGroup, PortBinding

log = logging.getLogger("monostack.network")


class Taps(Protocol):
    """The data plane's part in binding (network/netlink.py DataPlane is the real one)."""

    async def attach_tap(self, tap_name: str, bridge: str) -> Any:
        """Put the guest's tap on the network's bridge; NotFound when there is no tap."""
        ...

    async def delete_port(self, name: str) -> None:
        """Remove the tap (or veth) named `name` from the data plane."""
        ...


class ComputeBinding:
    def __init__(self, tables: NetworkTables, lock: asyncio.Lock, ports: PortWriter,
                 taps: Taps | None, events: EventBus,
                 sync: Callable[[], Awaitable[None]]) -> None:
        self.t, self.lock, self.port_writer = tables, lock, ports
        self.taps, self.events, self.sync = taps, events, sync

    def _default_network(self, project_id: str) -> Network | None:
        own = [n for n in self.t.networks.list(lambda n: n.project_id == project_id
                                               and not n.external)]
        if len(own) == 1:
            return own[0]
        named = [n for n in own if n.name == "private"]
        if named:
            return named[0]
        if own:
            return min(own, key=lambda n: n.created_at)
        shared = [n for n in self.t.networks.list(lambda n: n.shared and not n.external)]
        return min(shared, key=lambda n: n.created_at) if shared else None

    def check_requested_networks(self, project_id: str,
                                 requested_networks: list[dict[str, Any]]) -> None:
        """What allocate_ports would refuse, said at the API (Nova answers 400/409 there)
        instead of a server that goes to ERROR later: unknown or foreign networks and ports,
        ports bound elsewhere."""
        for req in requested_networks or []:
            if req.get("none"):
                continue
            port_id = req.get("port") or req.get("port_id")
            net_id = req.get("uuid") or req.get("net_id") or req.get("network_id")
            if port_id:
                port = self.t.ports.get(port_id) if isinstance(port_id, str) else None
                if port is None or port.project_id != project_id:
                    raise NotFound(f"Port {port_id} could not be found.")
                if port.device_id:
                    raise Conflict(f"Port {port_id} is still in use.")
            elif net_id:
                net = self.t.networks.get(net_id) if isinstance(net_id, str) else None
                if net is None or not (net.project_id == project_id or net.shared):
                    raise NotFound(f"Network {net_id} could not be found.")

    async def allocate_ports(self, instance_id: str, project_id: str,
                             requested_networks: list[dict[str, Any]],
                             security_groups: list[str] | None = None) -> list[PortBinding]:
        requests = list(requested_networks or [])
        # the server's groups (names or ids) go on every port made for it, as Nova asks Neutron
        wanted = [g for g in security_groups or [] if g != "default"]
        groups = self.port_writer.check_groups(security_groups, project_id, False) if wanted else None
        if any(req.get("none") for req in requests):
            requests = []  # Nova's networks "none": the server gets no NIC at all
        elif not requests:
            default = self._default_network(project_id)
            requests = [{"uuid": default.id}] if default is not None else []
        digest = hashlib.sha1(json.dumps(requested_networks or [], sort_keys=True,
                                         default=str).encode()).hexdigest()[:12]
        made = False
        for index, req in enumerate(requests):
            key = f"{digest}:{index}"
            if self.t.ports.list(lambda p: p.device_id == instance_id and p.binding_request == key):
                continue  # already allocated by an earlier call with the same request
            port_id = req.get("port") or req.get("port_id")
            net_id = req.get("uuid") or req.get("net_id") or req.get("network_id")
            fixed_ip = req.get("fixed_ip")
            fixed_ips = req.get("fixed_ips")
            if port_id:
                async with self.lock:
                    port = self.t.ports.get(port_id)
                    if port is None or port.project_id != project_id:
                        raise NotFound(f"Port {port_id} could not be found.")
                    if port.device_id and port.device_id != instance_id:
                        raise Conflict(f"Port {port_id} is still in use.")
                    port.device_id, port.device_owner = instance_id, "compute:nova"
                    port.binding_request, port.binding_host_id = key, socket.gethostname()
                    port.bound_at = time.time()
                    port.updated_at, port.revision_number = now_iso(), port.revision_number + 1
                    await self.t.ports.save(port)
                made = True
                continue
            if not net_id:
                raise BadRequest(f"Bad network request: {req}")
            net = self.t.networks.get(net_id)
            if net is None or not (net.project_id == project_id or net.shared):
                raise NotFound(f"Network {net_id} could not be found.")
            fixed = ([{"ip_address": fixed_ip}] if fixed_ip else
                     [f if isinstance(f, dict) else {"ip_address": f} for f in fixed_ips]
                     if fixed_ips else None)
            await self.port_writer.create_port(
                project_id, net.id, device_id=instance_id, device_owner="compute:nova",
                fixed_ips=fixed, security_groups=groups, binding_host_id=socket.gethostname(),
                binding_request=key, auto_delete=True, bound_at=time.time(), sync=False)
            made = True
        if made:
            await self.sync()
        nets = {n.id: n for n in self.t.networks.list()}
        out = []
        for port in sorted(self.t.ports.list(lambda p: p.device_id == instance_id
                                             and p.device_owner.startswith("compute:")),
                           key=lambda p: (p.bound_at, p.id)):
            net = nets.get(port.network_id)
            out.append(PortBinding(port_id=port.id, network_id=port.network_id,
                                   network_name=net.name if net else "", mac=port.mac_address,
                                   tap_name=port.tap_name, mtu=net.mtu if net else None,
                                   fixed_ips=port.ips()))
        return out

    def _instance_ports(self, instance_id: str) -> list[Port]:
        return self.t.ports.list(lambda p: p.device_id == instance_id
                                 and p.device_owner.startswith("compute:"))

    def _group_named(self, name: str, project_id: str) -> SecurityGroup:
        """A group by id, else by name within the project; several of one name is a 409, as
        Nova answers when a name is ambiguous."""
        sg = self.t.security_groups.get(name)
        if sg is not None and sg.project_id == project_id:
            return sg
        found = self.t.security_groups.list(lambda s: s.name == name and s.project_id == project_id)
        if not found:
            raise NotFound(f"Security group {name} not found.")
        if len(found) > 1:
            raise Conflict(f"Multiple security_group matches found for name '{name}', use an "
                           f"ID to be more specific.")
        return found[0]

    async def change_instance_security_group(self, instance_id: str, project_id: str, *,
                                             add: str | None = None,
                                             remove: str | None = None) -> list[str]:
        """Nova's add/removeSecurityGroup: the group goes on (or off) every port of the server,
        so the firewall follows at once. Returns the names of the groups the ports now hold."""
        async with self.lock:
            ports = self._instance_ports(instance_id)
            if not ports:
                raise BadRequest(f"Server {instance_id} has no ports to hold security groups.")
            sg = self._group_named(add or remove or "", project_id)
            if add:
                if all(sg.id in p.security_groups for p in ports):
                    raise BadRequest(f"Security group {sg.name} is already associated with "
                                     f"the instance {instance_id}")
                for p in ports:
                    if not p.port_security_enabled:
                        raise BadRequest(f"Cannot add security group {sg.name} to port {p.id}: "
                                         f"port security is disabled on it.")
            elif not any(sg.id in p.security_groups for p in ports):
                raise BadRequest(f"Security group {sg.name} not associated with the instance "
                                 f"{instance_id}")
            ts = now_iso()
            for p in ports:
                groups = [g for g in p.security_groups if g != sg.id]
                p.security_groups = groups + [sg.id] if add else groups
                p.updated_at, p.revision_number = ts, p.revision_number + 1
            await self.t.store.commit([self.t.ports.put_op(p) for p in ports])
            names = self._group_names(ports)
        await self.sync()
        return names

    def _group_names(self, ports: list[Port]) -> list[str]:
        ids = list(dict.fromkeys(g for p in ports for g in p.security_groups))
        return [sg.name for g in ids if (sg := self.t.security_groups.get(g)) is not None]

    def instance_security_groups(self, instance_id: str) -> list[InstanceGroup]:
        ports = self._instance_ports(instance_id)
        out = []
        for gid in dict.fromkeys(g for p in ports for g in p.security_groups):
            sg = self.t.security_groups.get(gid)
            if sg is None:
                continue
            rules = [GroupRule(id=r.id, protocol=r.protocol, from_port=r.port_range_min,
                               to_port=r.port_range_max, cidr=r.remote_ip_prefix,
                               remote_group_id=r.remote_group_id)
                     for r in self.t.sg_rules.list(lambda r, g=gid: r.security_group_id == g)
                     if r.direction == "ingress" and r.ethertype == "IPv4"]
            out.append(InstanceGroup(id=sg.id, name=sg.name, description=sg.description,
                                     project_id=sg.project_id, rules=rules))
        return out

    def floating_addresses(self) -> dict[str, dict[str, list[str]]]:
        """port id → fixed address → the floating addresses NATed to it (the server view lists
        them as `OS-EXT-IPS:type: floating`); one pass for a whole server listing."""
        out: dict[str, dict[str, list[str]]] = {}
        for f in self.t.floatingips.list(lambda f: bool(f.port_id and f.fixed_ip_address)):
            out.setdefault(f.port_id, {}).setdefault(f.fixed_ip_address, []).append(
                f.floating_ip_address)
        return out

    async def plug(self, tap_name: str, port_id: str) -> None:
        port = self.t.ports.require(port_id)
        net = self.t.networks.require(port.network_id)
        if self.taps is not None:
            try:
                await self.taps.attach_tap(tap_name, net.bridge)
            except NotFound as exc:
                # No tap (a hypervisor driver that makes none, or the domain already stopped):
                # the guest has no link, which the port's DOWN status and the event say.
                log.warning("cannot plug %s for port %s: %s", tap_name, port.id, exc)
                await self.events.publish("port.plug_failed", "port", port.id,
                                                port.project_id, f"{tap_name}: {exc}")
                return
        if port.status != "ACTIVE" or (tap_name and port.tap_name != tap_name):
            async with self.lock:
                port = self.t.ports.require(port_id)
                port.status, port.tap_name = "ACTIVE", tap_name
                await self.t.ports.save(port)
            await self.sync()

    async def deallocate_ports(self, instance_id: str) -> None:
        ports = self.t.ports.list(lambda p: p.device_id == instance_id
                                  and p.device_owner.startswith("compute:"))
        for port in ports:
            await self._release(port.id, sync=False)
        if ports:
            await self.sync()

    async def deallocate_port(self, port_id: str) -> None:
        await self._release(port_id, sync=True)

    async def _release(self, port_id: str, *, sync: bool) -> None:
        async with self.lock:
            port = self.t.ports.get(port_id)
            if port is None:
                return
            if port.auto_delete:
                await self.port_writer.delete_port_locked(port.id, internal=True)
            else:  # a port the user handed in: unbind it, keep it
                port.device_id = port.device_owner = port.binding_request = ""
                port.binding_host_id, port.status = "", "DOWN"
                port.updated_at, port.revision_number = now_iso(), port.revision_number + 1
                await self.t.ports.save(port)
        if self.taps is not None:
            with contextlib.suppress(Exception):
                await self.taps.delete_port(port.tap_name)
        if sync:
            await self.sync()

    async def network_data(self, instance_id: str) -> dict[str, Any]:
        """network_data.json for the config drive (links, networks, DNS services)."""
        links, networks, services = [], [], []
        subnets = {s.id: s for s in self.t.subnets.list()}
        for i, port in enumerate(sorted(self.t.ports.list(lambda p: p.device_id == instance_id),
                                        key=lambda p: p.created_at)):
            net = self.t.networks.get(port.network_id)
            links.append({"id": port.tap_name, "vif_id": port.id, "type": "phy",
                          "ethernet_mac_address": port.mac_address,
                          "mtu": net.mtu if net else 1500})
            for f in port.fixed_ips:
                sn = subnets.get(f["subnet_id"])
                if sn is None:
                    continue
                cidr = ipaddress.IPv4Network(sn.cidr)
                routes = [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": sn.gateway_ip}] \
                    if sn.gateway_ip else []
                for r in sn.host_routes:
                    dest = ipaddress.IPv4Network(r["destination"])
                    routes.append({"network": str(dest.network_address),
                                   "netmask": str(dest.netmask), "gateway": r["nexthop"]})
                networks.append({"id": f"network{len(networks)}", "type": "ipv4_dhcp"
                                 if sn.enable_dhcp else "ipv4", "link": port.tap_name,
                                 "ip_address": f["ip_address"], "netmask": str(cidr.netmask),
                                 "routes": routes, "network_id": port.network_id,
                                 "services": [{"type": "dns", "address": d}
                                              for d in sn.dns_nameservers]})
                services += [{"type": "dns", "address": d} for d in sn.dns_nameservers
                             if {"type": "dns", "address": d} not in services]
        return {"links": links, "networks": networks, "services": services}
