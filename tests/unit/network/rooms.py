"""What the network rooms (routing.py, security_groups.py, compute_binding.py) are built from
in a unit test: the real repositories over a store in tmp_path, the real quota ledger with
limits a test sets, and small fakes of the ports and of the data plane's taps. No manager,
no namespace, no daemon."""
from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from appliance.errors import NotFound, QuotaExceeded
from appliance.network import ipam
from appliance.network.records import Network, Port, Subnet, now_iso, tap_name
from appliance.network.tables import NetworkTables
from appliance.quota import QuotaSource, Quotas
from appliance.state import Store

RESOURCES = ("router", "floatingip", "port", "security_group", "security_group_rule")


class Syncs:
    """The data plane's sync, counted: a room must ask for one after a change it commits."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


class Room:
    """The dependencies one room is wired with, as the manager wires them."""

    def __init__(self, store: Store) -> None:
        self.tables = NetworkTables.over(store)
        self.lock = asyncio.Lock()
        self.sync = Syncs()
        self.limits: dict[str, int] = dict.fromkeys(RESOURCES, -1)
        self.quotas = Quotas()
        kinds = {"router": self.tables.routers, "floatingip": self.tables.floatingips,
                 "port": self.tables.ports, "security_group": self.tables.security_groups,
                 "security_group_rule": self.tables.sg_rules}
        self.quotas.register(QuotaSource(
            RESOURCES, lambda project: dict(self.limits),
            lambda project: {r: len(repo.list(lambda x: x.project_id == project))
                             for r, repo in kinds.items()},
            lambda resource, *_: QuotaExceeded(f"Quota exceeded for {resource}")))
        self.ports = FakePorts(self.tables, self.lock)

    async def network(self, project_id: str, cidr: str | None = None, *,
                      external: bool = False, shared: bool = False,
                      gateway: bool = True) -> tuple[Network, Subnet | None]:
        ts = now_iso()
        net = Network(id=str(uuid.uuid4()), name=f"net-{cidr}", project_id=project_id,
                      external=external, shared=shared, created_at=ts, updated_at=ts)
        await self.tables.networks.save(net)
        if cidr is None:
            return net, None
        addr = ipaddress.IPv4Network(cidr)
        gw = str(addr.network_address + 1) if gateway else None
        sn = Subnet(id=str(uuid.uuid4()), name="sn", network_id=net.id, project_id=project_id,
                    cidr=cidr, gateway_ip=gw, allocation_pools=ipam.default_pools(addr, [gw]),
                    created_at=ts, updated_at=ts)
        await self.tables.subnets.save(sn)
        return net, sn


class FakePorts:
    """network/port_writer.py's PortWriter over the tables: the first free address of the
    network's subnets (or the one asked for), a MAC from a counter, no groups unless given.
    It records which calls came with the lock held, which the rooms promise."""

    def __init__(self, tables: NetworkTables, lock: asyncio.Lock) -> None:
        self.t, self.lock = tables, lock
        self.unlocked_calls: list[str] = []
        self._macs = 0

    async def create_port(self, project_id: str, network_id: str, *, sync: bool = True,
                          **options: Any) -> Port:
        async with self.lock:
            return await self.create_port_locked(project_id, network_id, **options)

    async def create_port_locked(self, project_id: str, network_id: str, *,
                                 fixed_ips: list | None = None,
                                 security_groups: list | None = None,
                                 extra_ops: list | None = None, is_admin: bool = False,
                                 **fields: Any) -> Port:
        if not self.lock.locked():
            self.unlocked_calls.append("create_port_locked")
        net = self.t.networks.require(network_id)
        subnets = self.t.subnets.list(lambda s: s.network_id == net.id)
        held = [f for p in self.t.ports.list(lambda p: p.network_id == net.id)
                for f in p.fixed_ips]
        ips = []
        for want in fixed_ips or [{}]:
            for sn in subnets:
                if want.get("subnet_id") not in (None, sn.id):
                    continue
                taken = ipam.used_addresses(
                    sn, [f["ip_address"] for f in held if f["subnet_id"] == sn.id])
                ip = (ipam.reserve(sn, want["ip_address"], taken, service=True)
                      if want.get("ip_address") else ipam.allocate(sn, taken))
                if ip is not None:
                    ips.append({"subnet_id": sn.id, "ip_address": ip})
                    break
        self._macs += 1
        pid = str(uuid.uuid4())
        port = Port(id=pid, name="", network_id=net.id, project_id=project_id,
                    mac_address=f"fa:16:3e:00:00:{self._macs:02x}", fixed_ips=ips,
                    security_groups=list(security_groups or []), tap_name=tap_name(pid),
                    created_at=now_iso(), **fields)
        await self.t.store.commit([self.t.ports.put_op(port), *(extra_ops or [])])
        return port

    async def delete_port_locked(self, port_id: str, *, internal: bool = False) -> None:
        if not self.lock.locked():
            self.unlocked_calls.append("delete_port_locked")
        await self.t.ports.delete(self.t.ports.require(port_id).id)

    def check_groups(self, groups: list | None, project_id: str, is_admin: bool) -> list[str]:
        out = []
        for g in groups or []:
            found = self.t.security_groups.get(g) or next(iter(self.t.security_groups.list(
                lambda s: s.name == g and s.project_id == project_id)), None)
            if found is None:
                raise NotFound(f"Security group {g} does not exist")
            out.append(found.id)
        return out


class FakeTaps:
    """compute_binding.py's Taps: the taps that exist, which bridge each was put on, which
    were removed."""

    def __init__(self, existing: set[str] | None = None) -> None:
        self.existing = set(existing or ())
        self.attached: dict[str, str] = {}
        self.deleted: list[str] = []

    async def attach_tap(self, tap_name: str, bridge: str) -> None:
        if tap_name not in self.existing:
            raise NotFound(f"no link {tap_name}")
        self.attached[tap_name] = bridge

    async def delete_port(self, name: str) -> None:
        self.deleted.append(name)
        self.attached.pop(name, None)


@asynccontextmanager
async def room_over(path: Path) -> AsyncIterator[Room]:
    store = Store(path / "state")
    await store.open()
    try:
        yield Room(store)
    finally:
        await store.close()
