"""The network service's logic: records, IPAM, the data plane, DHCP and the firewall.

Every mutation of records that allocates (ports, addresses, MACs, default groups) runs under
one asyncio lock and persists in one store transaction, so two concurrent requests can never
get the same address or MAC. After each change `sync()` makes the data plane match the records:
bridges (one per network), their addresses, one DHCP server per bridge, the nftables ruleset.
`sync()` coalesces: a burst of changes costs one reconciliation, and every caller returns only
after a reconciliation that includes its change has run.

The namespace is created at start and never removed here: `monostack network teardown` does that
explicitly (a daemon restart must find the guests' taps where it left them).

Rooms behind this facade: `dataplane_sync.py` (the data plane and DHCP servers made to match
the records), `compute_binding.py` (what compute asks: ports for instances, plugging, their
security groups, network_data), `routing.py` (routers and floating IPs),
`security_groups.py` (groups and their rules), `metadata.py` (the metadata service's side
here). Networks, subnets, ports and quotas remain here. The manager is built from the store,
network's config, the quota ledger and the event bus (not the daemon's context) and wires the
rooms, each handed only what it uses — the repositories (`tables.py`), the one lock, the
quotas, the ports (this manager, as `port_writer.py`'s PortWriter), the data plane's taps and
`sync` — so each can be unit-tested over a store of its own (tests/unit/network/).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections.abc import Callable
from typing import Any

from appliance.config import NetworkConfig
from appliance.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound, QuotaExceeded
from appliance.events import EventBus
from appliance.network import ipam
from appliance.network.compute_binding import ComputeBinding
from appliance.network.dataplane_sync import DataPlaneSync
from appliance.network.metadata import NetworkMetadata
from appliance.network.netlink import DataPlane, load_pyroute2
from appliance.network.routing import Routing
from appliance.network.security_groups import SecurityGroups
from appliance.network.tables import NetworkTables
from appliance.network.records import (
    QUOTA_DEFAULTS,
    Network,
    Port,
    PortOwner,
    QuotaSet,
    Subnet,
    now_iso,
    tap_name,
)
from appliance.quota import Quotas, QuotaSource
from appliance.quota import Reservation as QuotaReservation
from appliance.seams import ComputeForNetwork
from appliance.state import FieldIndex, Store

log = logging.getLogger("monostack.network")


def _over_quota(resource: str, asked: int, used: int, limit: int) -> QuotaExceeded:
    return QuotaExceeded(f"Quota exceeded for resources: ['{resource}'].")

UNSET: Any = object()
DEFAULT_DOMAIN = "monostack.local"
class NetworkManager:
    def __init__(self, store: Store, config: NetworkConfig, quotas: Quotas, events: EventBus,
                 *, compute: Callable[[], ComputeForNetwork | None] = lambda: None,
                 dataplane: bool = True, lease_time: int = 86400,
                 dns_domain: str = DEFAULT_DOMAIN) -> None:
        """Built from what it uses, not the daemon's context, so a test builds it over a store
        of its own. quotas: the daemon's one ledger (network's resources register there);
        compute: the compute component when it runs (None otherwise), asked when needed: it
        is built after network."""
        self.compute = compute
        #: the daemon's one quota ledger (`quotas` is network's own quota-set table)
        self.quota_ledger = quotas
        self.events = events
        #: every table's repository; the rooms below are handed these, not the manager
        self.tables = tables = NetworkTables.over(store)
        self.networks, self.subnets, self.ports = tables.networks, tables.subnets, tables.ports
        self.security_groups, self.sg_rules = tables.security_groups, tables.sg_rules
        self.routers, self.floatingips = tables.routers, tables.floatingips
        self.leases, self.quotas = tables.leases, tables.quotas
        # Indexes the store keeps current: a port create asked for every port's MAC, tap
        # name and address and for each project's counts, decoding the whole table each time
        self._addresses = ipam.AddressIndex(store, self.ports.table)
        self._ports_by_mac = FieldIndex(store, self.ports.table, lambda d: d["mac_address"])
        self._ports_by_tap = FieldIndex(store, self.ports.table, lambda d: d.get("tap_name"))
        self._by_project = {repo.kind: FieldIndex(store, repo.table,
                                                  lambda d: d.get("project_id"))
                            for repo in (self.networks, self.subnets, self.ports, self.routers,
                                         self.floatingips, self.security_groups,
                                         self.sg_rules)}
        self.dp = DataPlane(config.namespace) if dataplane else None
        #: the one lock every allocating mutation runs under (the rooms share it)
        self._lock = asyncio.Lock()
        #: what compute asks of network (appliance/seams.py NetworkSeam)
        self.binding = ComputeBinding(tables, self._lock, self, self.dp, events, self.sync)
        #: routers (SNAT, interfaces) and floating IPs (1:1 NAT)
        self.routing = Routing(tables, self._lock, self, quotas, self.sync,
                               external_cidr=config.external_cidr)
        #: security groups and their rules (the ruleset follows at the next sync)
        self.groups = SecurityGroups(tables, self._lock, quotas, self.sync)
        #: the metadata service at 169.254.169.254 on every bridge (with the data plane only)
        self.metadata = (NetworkMetadata(self.dp, self.binding.network_data, compute)
                         if self.dp else None)
        self.lease_time = lease_time
        self.dns_domain = dns_domain
        quotas.register(QuotaSource(tuple(QUOTA_DEFAULTS), self.quota_limits, self.usage,
                                        _over_quota))
        #: set once start() has made the namespace (or failed to)
        self.namespace_ready = asyncio.Event()
        #: bridges, addresses, DHCP servers and the ruleset, made to match the records
        self.dataplane = DataPlaneSync(self)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Namespace, sysctls, then the first sync (bridges, DHCP, nftables). The component
        runs it in the background: a sync asked for meanwhile (an API write) waits for the
        namespace (`namespace_ready`), never builds into a namespace that is not there yet."""
        try:
            if self.dp is not None:
                await asyncio.to_thread(load_pyroute2)  # ~160 modules, off the event loop
                await self.dp.ensure_namespace()
                await self.dp.set_sysctl("net/ipv4/ip_forward", "1")
                if not await self.dp.set_sysctl("net/bridge/bridge-nf-call-iptables", "1"):
                    log.warning("br_netfilter is not available: security groups cannot see "
                                "bridged traffic")
        finally:
            self.namespace_ready.set()  # also when it failed: syncs then say why
        self.dataplane.start()
        await self.sync()

    async def stop(self) -> None:
        if self.metadata is not None:
            await self.metadata.stop()
        await self.dataplane.stop()
        if self.dp is not None:
            await self.dp.close()  # the namespace stays: teardown is explicit

    def health(self) -> str:
        if self.dataplane.last_error:
            return f"degraded: {self.dataplane.last_error}"
        return (f"ok ({len(self.networks.list())} networks, {self.ports.count()} ports, "
                f"{self.dataplane.listeners} DHCP listeners)")

    # ---- the data plane and DHCP: network/dataplane_sync.py ---------------------------------

    async def sync(self) -> None:
        """Make the data plane match the records (coalesced: see DataPlaneSync.sync)."""
        await self.dataplane.sync()

    def dhcp_stats(self) -> dict[str, dict[str, int]]:
        return self.dataplane.dhcp_stats()

    # ---- quotas (who may see a network: identity/policy.py network_visible) --------------------

    def quota_for(self, project_id: str) -> QuotaSet:
        return self.quotas.get(project_id) or QuotaSet(id=project_id)

    def usage(self, project_id: str) -> dict[str, int]:
        count = {kind: index.count(project_id) for kind, index in self._by_project.items()}
        return {
            "network": count[self.networks.kind],
            "subnet": count[self.subnets.kind],
            "port": count[self.ports.kind],
            "router": count[self.routers.kind],
            "floatingip": count[self.floatingips.kind],
            "security_group": count[self.security_groups.kind],
            "security_group_rule": count[self.sg_rules.kind],
        }

    def quota_limits(self, project_id: str) -> dict[str, int]:
        quota = self.quota_for(project_id)
        return {resource: quota.limit(resource) for resource in QUOTA_DEFAULTS}

    def _reserve(self, project_id: str, resource: str) -> QuotaReservation:
        """One `resource` for the project (none for the service's own ports); the write that
        stores it goes through the reservation's `store`."""
        return self.quota_ledger.reserve(project_id, {resource: 1})

    async def set_quota(self, project_id: str, limits: dict[str, Any]) -> QuotaSet:
        q = self.quota_for(project_id)
        for key, value in limits.items():
            if key not in QUOTA_DEFAULTS:
                raise BadRequest(f"Unrecognized quota attribute {key}.")
            try:
                q.limits[key] = int(value)
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"Quota {key} must be an integer.") from exc
            if q.limits[key] < -1:
                raise BadRequest(f"Quota {key} must be -1 or more.")
        await self.quotas.save(q)
        return q

    async def reset_quota(self, project_id: str) -> None:
        await self.quotas.delete(project_id)

    # ---- networks ----------------------------------------------------------------------------

    async def create_network(self, project_id: str, *, name: str = "", admin_state_up: bool = True,
                             shared: bool = False, external: bool = False, mtu: int | None = None,
                             port_security_enabled: bool = True, description: str = "",
                             tags: list[str] | None = None) -> Network:
        mtu = 1500 if mtu is None else int(mtu)
        if not 68 <= mtu <= 9000:
            raise Invalid("mtu must be between 68 and 9000")
        async with self._lock, self._reserve(project_id, "network") as held:
            ts = now_iso()
            net = Network(id=str(uuid.uuid4()), name=name, project_id=project_id,
                          admin_state_up=admin_state_up, shared=shared, external=external,
                          mtu=mtu, port_security_enabled=port_security_enabled,
                          description=description, tags=list(tags or []), created_at=ts,
                          updated_at=ts)
            while any(n.bridge == net.bridge for n in self.networks.list()):
                net.id = str(uuid.uuid4())
            await held.store(self.networks.save(net))
        await self.sync()
        return net

    async def update_network(self, net: Network, changes: dict[str, Any]) -> Network:
        async with self._lock:
            net = self.networks.require(net.id)
            for key in ("name", "admin_state_up", "shared", "external", "port_security_enabled",
                        "description", "tags"):
                if key in changes:
                    setattr(net, key, changes[key])
            if "mtu" in changes and changes["mtu"] is not None:
                net.mtu = int(changes["mtu"])
            net.updated_at, net.revision_number = now_iso(), net.revision_number + 1
            await self.networks.save(net)
        await self.sync()
        return net

    async def delete_network(self, network_id: str) -> None:
        async with self._lock:
            net = self.networks.require(network_id)
            in_use = [p for p in self.ports.list(lambda p: p.network_id == net.id)
                      if p.device_owner != PortOwner.DHCP]
            if in_use:
                raise Conflict(f"Unable to complete operation on network {net.id}. There are one "
                               f"or more ports still in use on the network.")
            ops = [self.networks.delete_op(net.id)]
            ops += [self.subnets.delete_op(s.id)
                    for s in self.subnets.list(lambda s: s.network_id == net.id)]
            ops += [self.ports.delete_op(p.id)
                    for p in self.ports.list(lambda p: p.network_id == net.id)]
            ops += [self.leases.delete_op(r.id)
                    for r in self.leases.list(lambda r: r.network_id == net.id)]
            await self.tables.store.commit(ops)
        await self.sync()

    # ---- subnets -----------------------------------------------------------------------------

    async def create_subnet(self, project_id: str, network_id: str, *, cidr: str, name: str = "",
                            gateway_ip: Any = UNSET, allocation_pools: list | None = None,
                            dns_nameservers: list | None = None, host_routes: list | None = None,
                            enable_dhcp: bool = True, ip_version: int = 4,
                            description: str = "", tags: list[str] | None = None) -> Subnet:
        if ip_version != 4:
            raise BadRequest("Only IPv4 subnets are supported.")
        net_addr = ipam.parse_cidr(cidr)
        hosts = list(net_addr.hosts()) if net_addr.num_addresses <= 65536 else None
        first = net_addr.network_address + 1
        if gateway_ip is UNSET:
            gateway = str(first)
        elif gateway_ip is None:
            gateway = None
        else:
            gw = ipam.parse_ip(gateway_ip, "gateway_ip")
            if gw not in net_addr or gw in (net_addr.network_address, net_addr.broadcast_address):
                raise BadRequest(f"Gateway IP {gw} is not a valid host address of {net_addr}.")
            gateway = str(gw)
        dns = [str(ipam.parse_ip(d, "DNS nameserver")) for d in (dns_nameservers or [])]
        routes = self._check_routes(host_routes or [])
        dhcp_address = None
        if allocation_pools:
            pools = ipam.validate_pools(net_addr, allocation_pools, gateway)
            if enable_dhcp and gateway is None:
                probe = Subnet(id="", name="", network_id="", project_id="", cidr=str(net_addr),
                               allocation_pools=pools)
                for ip in (hosts or [first]):
                    if not ipam.in_pools(ip, probe):
                        dhcp_address = str(ip)
                        break
        else:
            if enable_dhcp and gateway is None:
                dhcp_address = str(first)
            pools = ipam.default_pools(net_addr, [gateway, dhcp_address]) if hosts is not None \
                else [{"start": str(first + 1), "end": str(net_addr.broadcast_address - 1)}]
        async with self._lock, self._reserve(project_id, "subnet") as held:
            net = self.networks.require(network_id)
            for other in self.subnets.list(lambda s: s.network_id == net.id):
                if ipaddress.IPv4Network(other.cidr).overlaps(net_addr):
                    raise BadRequest(f"Invalid input for operation: Requested subnet with cidr: "
                                     f"{net_addr} for network: {net.id} overlaps with another "
                                     f"subnet.")
            ts = now_iso()
            sn = Subnet(id=str(uuid.uuid4()), name=name, network_id=net.id, project_id=project_id,
                        cidr=str(net_addr), gateway_ip=gateway, allocation_pools=pools,
                        dns_nameservers=dns, host_routes=routes, enable_dhcp=enable_dhcp,
                        dhcp_address=dhcp_address, description=description,
                        tags=list(tags or []), created_at=ts, updated_at=ts)
            await held.store(self.subnets.save(sn))
        await self.sync()
        return sn

    @staticmethod
    def _check_routes(routes: list) -> list[dict[str, str]]:
        out = []
        for r in routes:
            if not isinstance(r, dict) or "destination" not in r or "nexthop" not in r:
                raise BadRequest("host_routes entries need 'destination' and 'nexthop'.")
            try:
                dest = ipaddress.IPv4Network(r["destination"], strict=False)
            except ValueError as exc:
                raise BadRequest(f"Invalid host route destination {r['destination']}") from exc
            out.append({"destination": str(dest),
                        "nexthop": str(ipam.parse_ip(r["nexthop"], "nexthop"))})
        return out

    async def update_subnet(self, sn: Subnet, changes: dict[str, Any]) -> Subnet:
        async with self._lock:
            sn = self.subnets.require(sn.id)
            for key in ("name", "description", "enable_dhcp", "tags"):
                if key in changes:
                    setattr(sn, key, changes[key])
            if "dns_nameservers" in changes:
                sn.dns_nameservers = [str(ipam.parse_ip(d)) for d in changes["dns_nameservers"] or []]
            if "host_routes" in changes:
                sn.host_routes = self._check_routes(changes["host_routes"] or [])
            if "gateway_ip" in changes:
                gw = changes["gateway_ip"]
                if gw is not None:
                    addr = ipam.parse_ip(gw)
                    if addr not in ipaddress.IPv4Network(sn.cidr) or ipam.in_pools(addr, sn):
                        raise Conflict(f"Gateway ip {gw} conflicts with the subnet or its pools.")
                    gw = str(addr)
                sn.gateway_ip = gw
            if "allocation_pools" in changes and changes["allocation_pools"]:
                sn.allocation_pools = ipam.validate_pools(
                    ipaddress.IPv4Network(sn.cidr), changes["allocation_pools"], sn.gateway_ip)
            sn.updated_at, sn.revision_number = now_iso(), sn.revision_number + 1
            await self.subnets.save(sn)
        await self.sync()
        return sn

    async def delete_subnet(self, subnet_id: str) -> None:
        async with self._lock:
            sn = self.subnets.require(subnet_id)
            users = [p for p in self.ports.list()
                     if any(f["subnet_id"] == sn.id for f in p.fixed_ips)
                     and p.device_owner != PortOwner.DHCP]
            if users:
                raise Conflict(f"Unable to complete operation on subnet {sn.id}: one or more "
                               f"ports have an IP allocation from this subnet.")
            await self.subnets.delete(sn.id)
        await self.sync()

    # ---- security groups: network/security_groups.py ----------------------------------------

    # ---- ports -------------------------------------------------------------------------------

    def _mac_in_use(self, mac: str, network_id: str | None = None,
                    exclude_port: str | None = None) -> bool:
        return any(d["id"] != exclude_port and network_id in (None, d["network_id"])
                   for d in self._ports_by_mac.docs(mac))

    def _assign_ips(self, net: Network, requested: list[dict[str, Any]] | None, *,
                    service: bool = False, exclude_port: str | None = None) -> list[dict[str, str]]:
        """Fixed IPs for a port on `net` (caller holds the lock)."""
        subnets = sorted(self.subnets.list(lambda s: s.network_id == net.id),
                         key=lambda s: s.created_at)
        by_id = {s.id: s for s in subnets}
        out: list[dict[str, str]] = []
        if requested is None:
            for sn in subnets:
                ip = (self._addresses.allocate(sn) if exclude_port is None else ipam.allocate(
                    sn, ipam.used_addresses(
                        sn, self._addresses.taken(sn.id, besides_port=exclude_port))))
                if ip is not None:
                    return [{"subnet_id": sn.id, "ip_address": ip}]
            if subnets:
                raise Conflict(f"No more IP addresses available on network {net.id}.")
            return []
        for item in requested:
            if not isinstance(item, dict):
                raise BadRequest("fixed_ips entries must be objects")
            sid, ip = item.get("subnet_id"), item.get("ip_address")
            if sid is not None and sid not in by_id:
                raise BadRequest(f"Subnet {sid} is not part of network {net.id}.")
            if sid is None:
                if ip is None:
                    raise BadRequest("fixed_ips entries need subnet_id or ip_address")
                addr = ipam.parse_ip(ip)
                match = [s for s in subnets if addr in ipaddress.IPv4Network(s.cidr)]
                if not match:
                    raise BadRequest(f"IP address {ip} is not in any subnet of network {net.id}.")
                sid = match[0].id
            sn = by_id[sid]
            used = ipam.used_addresses(
                sn, self._addresses.taken(sn.id, besides_port=exclude_port)) | {
                    f["ip_address"] for f in out}
            if ip is None:
                got = ipam.allocate(sn, used)
                if got is None:
                    raise Conflict(f"No more IP addresses available on subnet {sn.id}.")
            else:
                got = ipam.reserve(sn, ip, used, service=service)
            out.append({"subnet_id": sn.id, "ip_address": got})
        return out

    def _check_pairs(self, pairs: list | None, mac: str) -> list[dict[str, str]]:
        out = []
        for p in pairs or []:
            if not isinstance(p, dict) or not p.get("ip_address"):
                raise BadRequest("allowed_address_pairs entries need ip_address")
            try:
                net = ipaddress.IPv4Network(p["ip_address"], strict=False)
            except ValueError as exc:
                raise BadRequest(f"Invalid allowed address pair {p['ip_address']}") from exc
            ip = str(net.network_address) if net.prefixlen == 32 else str(net)
            out.append({"ip_address": ip,
                        "mac_address": ipam.normalize_mac(p.get("mac_address") or mac)})
        return out

    def check_groups(self, groups: list | None, project_id: str, is_admin: bool) -> list[str]:
        out = []
        for g in groups or []:
            sg = self.security_groups.get(g)
            if sg is None:
                found = self.security_groups.list(lambda s, g=g: s.name == g
                                                  and s.project_id == project_id)
                if not found:
                    raise NotFound(f"Security group {g} does not exist")
                sg = found[0]
            if sg.project_id != project_id and not is_admin:
                raise NotFound(f"Security group {g} does not exist")
            if sg.id not in out:
                out.append(sg.id)
        return out

    async def create_port(self, project_id: str, network_id: str, *, is_admin: bool = False,
                          name: str = "", mac_address: str | None = None,
                          fixed_ips: list | None = None, device_id: str = "",
                          device_owner: str = "", admin_state_up: bool = True,
                          port_security_enabled: bool | None = None,
                          security_groups: list | None = None,
                          allowed_address_pairs: list | None = None,
                          binding_host_id: str = "", description: str = "",
                          extra_dhcp_opts: list | None = None, tags: list[str] | None = None,
                          binding_request: str = "", auto_delete: bool = False,
                          bound_at: float = 0.0, sync: bool = True) -> Port:
        async with self._lock:
            port = await self.create_port_locked(
                project_id, network_id, is_admin=is_admin, name=name, mac_address=mac_address,
                fixed_ips=fixed_ips, device_id=device_id, device_owner=device_owner,
                admin_state_up=admin_state_up, port_security_enabled=port_security_enabled,
                security_groups=security_groups, allowed_address_pairs=allowed_address_pairs,
                binding_host_id=binding_host_id, description=description,
                extra_dhcp_opts=extra_dhcp_opts, tags=tags, binding_request=binding_request,
                auto_delete=auto_delete, bound_at=bound_at)
        if sync:
            await self.sync()
        return port

    async def create_port_locked(self, project_id: str, network_id: str,
                                  **options: Any) -> Port:
        """Reserve the project's port quota, then make the port (committed once stored)."""
        async with self._reserve(project_id, "port") as held:
            return await self._make_port_locked(project_id, network_id, held, **options)

    async def _make_port_locked(self, project_id: str, network_id: str,
                                held: QuotaReservation, *, is_admin: bool,
                                  name: str = "", mac_address: str | None = None,
                                  fixed_ips: list | None = None, device_id: str = "",
                                  device_owner: str = "", admin_state_up: bool = True,
                                  port_security_enabled: bool | None = None,
                                  security_groups: list | None = None,
                                  allowed_address_pairs: list | None = None,
                                  binding_host_id: str = "", description: str = "",
                                  extra_dhcp_opts: list | None = None,
                                  tags: list[str] | None = None, binding_request: str = "",
                                  auto_delete: bool = False, bound_at: float = 0.0,
                                  extra_ops: list | None = None) -> Port:
        net = self.networks.require(network_id)
        service = device_owner.startswith("network:")
        if mac_address:
            mac = ipam.normalize_mac(mac_address)
            if self._mac_in_use(mac, net.id):
                raise Conflict(f"Unable to complete operation for network {net.id}. The mac "
                               f"address {mac} is in use.")
        else:
            mac = ipam.generate_mac(self._ports_by_mac)
        ips = self._assign_ips(net, fixed_ips, service=service)
        security = net.port_security_enabled if port_security_enabled is None \
            else bool(port_security_enabled)
        if service:
            security = False
        pairs = self._check_pairs(allowed_address_pairs, mac)
        if not security:
            if security_groups:
                raise Conflict("Port has security group associated. Cannot disable port "
                               "security or IP address until security group is removed.")
            if pairs:
                raise Conflict("Port security must be enabled in order to have allowed "
                               "address pairs on a port.")
            groups: list[str] = []
        elif security_groups is None:
            groups = ([(await self.groups.ensure_default_sg_locked(project_id)).id]
                      if project_id else [])
        else:
            groups = self.check_groups(security_groups, project_id, is_admin)
        ts = now_iso()
        pid = str(uuid.uuid4())
        while tap_name(pid) in self._ports_by_tap:
            pid = str(uuid.uuid4())
        port = Port(id=pid, name=name, network_id=net.id, project_id=project_id,
                    mac_address=mac, fixed_ips=ips, device_id=device_id,
                    device_owner=device_owner, admin_state_up=admin_state_up,
                    port_security_enabled=security, security_groups=groups,
                    allowed_address_pairs=pairs, extra_dhcp_opts=list(extra_dhcp_opts or []),
                    binding_host_id=binding_host_id, tap_name=tap_name(pid),
                    binding_request=binding_request, auto_delete=auto_delete,
                    bound_at=bound_at, description=description, tags=list(tags or []), created_at=ts, updated_at=ts,
                    status="DOWN" if not service else "ACTIVE")
        await held.store(self.tables.store.commit([self.ports.put_op(port), *(extra_ops or [])]))
        return port

    async def update_port(self, port: Port, changes: dict[str, Any], *,
                          is_admin: bool = False) -> Port:
        async with self._lock:
            port = self.ports.require(port.id)
            for key in ("name", "description", "admin_state_up", "device_id", "device_owner",
                        "binding_host_id", "tags", "extra_dhcp_opts"):
                if key in changes and changes[key] is not None:
                    setattr(port, key, changes[key])
            if "mac_address" in changes and changes["mac_address"]:
                if not is_admin:
                    raise Forbidden("Only admins may change a port's MAC address.")
                mac = ipam.normalize_mac(changes["mac_address"])
                if self._mac_in_use(mac, exclude_port=port.id):
                    raise Conflict(f"The mac address {mac} is in use.")
                port.mac_address = mac
            if "fixed_ips" in changes:
                net = self.networks.require(port.network_id)
                port.fixed_ips = self._assign_ips(net, changes["fixed_ips"] or [],
                                                  exclude_port=port.id)
            if "port_security_enabled" in changes:
                port.port_security_enabled = bool(changes["port_security_enabled"])
            if "security_groups" in changes:
                port.security_groups = self.check_groups(changes["security_groups"],
                                                          port.project_id, is_admin)
            elif "port_security_enabled" in changes and port.port_security_enabled \
                    and not port.security_groups and port.project_id:
                default = await self.groups.ensure_default_sg_locked(port.project_id)
                port.security_groups = [default.id]
            if "allowed_address_pairs" in changes:
                port.allowed_address_pairs = self._check_pairs(changes["allowed_address_pairs"],
                                                               port.mac_address)
            if not port.port_security_enabled and (port.security_groups
                                                   or port.allowed_address_pairs):
                raise Conflict("Port has security group associated. Cannot disable port "
                               "security or IP address until security group is removed.")
            port.updated_at, port.revision_number = now_iso(), port.revision_number + 1
            await self.ports.save(port)
        await self.sync()
        return port

    async def delete_port(self, port_id: str, *, internal: bool = False) -> None:
        async with self._lock:
            await self.delete_port_locked(port_id, internal=internal)
        await self.sync()

    async def delete_port_locked(self, port_id: str, *, internal: bool = False) -> None:
        port = self.ports.require(port_id)
        if not internal and port.device_owner in (PortOwner.ROUTER_INTERFACE,
                                                  PortOwner.ROUTER_GATEWAY, PortOwner.FLOATINGIP):
            raise Conflict(f"Port {port.id} cannot be deleted directly via the port API: has "
                           f"device owner {port.device_owner}.")
        ops = [self.ports.delete_op(port.id)]
        for fip in self.floatingips.list(lambda f: f.port_id == port.id):
            fip.port_id = fip.fixed_ip_address = fip.router_id = None
            fip.status = "DOWN"
            ops.append(self.floatingips.put_op(fip))
        ops += [self.leases.delete_op(r.id) for r in self.leases.list(lambda r: r.port_id == port.id)]
        await self.tables.store.commit(ops)

    # ---- routers and floating IPs: network/routing.py ----------------------------------------

    # ---- bootstrap ---------------------------------------------------------------------------

    async def bootstrap(self, project_id: str) -> None:
        """The admin project's default security group, network "private" and its subnet."""
        await self.groups.ensure_default_sg(project_id)
        if self.networks.list(lambda n: n.project_id == project_id and n.name == "private"):
            return
        net = await self.create_network(project_id, name="private")
        await self.create_subnet(project_id, net.id, name="private-subnet", cidr="10.0.0.0/24",
                                 gateway_ip="10.0.0.1")

