"""Security groups and their rules: each project's `default` group (made on first use, with
Neutron's default rules), the groups users make, and the rules, stateful and keyed by
`bridge . address` in the data plane's ruleset (network/rules.py), made by the next sync.

It is handed what it uses, not the manager (`NetworkManager`, its facade, wires it): the
records (tables.py), the manager's one lock (a port create makes the default group under it
too, so a project never gets two), the shared quotas and the data plane's sync.
"""
from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.errors import BadRequest, Conflict
from appliance.network.records import SecurityGroup, SecurityGroupRule, now_iso
from appliance.network.tables import NetworkTables
from appliance.quota import Quotas, Reservation


class SecurityGroups:
    def __init__(self, tables: NetworkTables, lock: asyncio.Lock, quotas: Quotas,
                 sync: Callable[[], Awaitable[None]]) -> None:
        self.t, self.lock, self.quotas, self.sync = tables, lock, quotas, sync

    def _reserve(self, project_id: str, resource: str) -> Reservation:
        return self.quotas.reserve(project_id, {resource: 1})

    def _default_rules(self, sg: SecurityGroup, *, default: bool) -> list[SecurityGroupRule]:
        ts = now_iso()
        rules = []
        for ethertype in ("IPv4", "IPv6"):
            rules.append(SecurityGroupRule(id=str(uuid.uuid4()), security_group_id=sg.id,
                                           project_id=sg.project_id, direction="egress",
                                           ethertype=ethertype, created_at=ts, updated_at=ts))
            if default:
                rules.append(SecurityGroupRule(
                    id=str(uuid.uuid4()), security_group_id=sg.id, project_id=sg.project_id,
                    direction="ingress", ethertype=ethertype, remote_group_id=sg.id,
                    created_at=ts, updated_at=ts))
        return rules

    def _default_sg(self, project_id: str) -> SecurityGroup | None:
        found = self.t.security_groups.list(lambda g: g.project_id == project_id
                                            and g.name == "default")
        return min(found, key=lambda g: g.created_at) if found else None

    async def ensure_default_sg_locked(self, project_id: str) -> SecurityGroup:
        sg = self._default_sg(project_id)
        if sg is not None:
            return sg
        ts = now_iso()
        sg = SecurityGroup(id=str(uuid.uuid4()), name="default", project_id=project_id,
                           description="Default security group", created_at=ts, updated_at=ts)
        rules = self._default_rules(sg, default=True)
        await self.t.store.commit([self.t.security_groups.put_op(sg),
                                       *[self.t.sg_rules.put_op(r) for r in rules]])
        return sg

    async def ensure_default_sg(self, project_id: str) -> SecurityGroup:
        if not project_id:
            raise BadRequest("a project is needed for a default security group")
        sg = self._default_sg(project_id)
        if sg is not None:
            return sg
        async with self.lock:
            return await self.ensure_default_sg_locked(project_id)

    async def create_security_group(self, project_id: str, *, name: str, description: str = "",
                                    stateful: bool = True,
                                    tags: list[str] | None = None) -> SecurityGroup:
        if name == "default" and self._default_sg(project_id) is not None:
            raise Conflict("Default security group already exists.")
        async with self.lock, self._reserve(project_id, "security_group") as held:
            await self.ensure_default_sg_locked(project_id)
            ts = now_iso()
            sg = SecurityGroup(id=str(uuid.uuid4()), name=name, project_id=project_id,
                               description=description, stateful=stateful,
                               tags=list(tags or []), created_at=ts, updated_at=ts)
            rules = self._default_rules(sg, default=False)
            await held.store(self.t.store.commit([self.t.security_groups.put_op(sg),
                                                      *[self.t.sg_rules.put_op(r) for r in rules]]))
        return sg

    async def update_security_group(self, sg: SecurityGroup, changes: dict[str, Any]) -> SecurityGroup:
        async with self.lock:
            sg = self.t.security_groups.require(sg.id)
            if sg.name == "default" and changes.get("name", "default") != "default":
                raise Conflict("Updating default security group not allowed.")
            for key in ("name", "description", "tags", "stateful"):
                if key in changes:
                    setattr(sg, key, changes[key])
            sg.updated_at, sg.revision_number = now_iso(), sg.revision_number + 1
            await self.t.security_groups.save(sg)
        return sg

    async def delete_security_group(self, sg_id: str, *, is_admin: bool = False) -> None:
        async with self.lock:
            sg = self.t.security_groups.require(sg_id)
            if sg.name == "default" and not is_admin:
                raise Conflict("Removing default security group not allowed.")
            users = self.t.ports.list(lambda p: sg.id in p.security_groups)
            if users:
                raise Conflict(f"Security Group {sg.id} in use.")
            ops = [self.t.security_groups.delete_op(sg.id)]
            ops += [self.t.sg_rules.delete_op(r.id) for r in self.t.sg_rules.list(
                lambda r: r.security_group_id == sg.id or r.remote_group_id == sg.id)]
            await self.t.store.commit(ops)
        await self.sync()

    async def create_security_group_rule(self, project_id: str, body: dict[str, Any]) -> SecurityGroupRule:
        sg = self.t.security_groups.require(body.get("security_group_id") or "")
        direction = body.get("direction")
        if direction not in ("ingress", "egress"):
            raise BadRequest("direction must be 'ingress' or 'egress'")
        ethertype = body.get("ethertype") or "IPv4"
        if ethertype not in ("IPv4", "IPv6"):
            raise BadRequest("ethertype must be IPv4 or IPv6")
        proto = body.get("protocol")
        if proto is not None:
            proto = str(proto).lower()
            if proto in ("any", ""):
                proto = None
            elif proto not in ("tcp", "udp", "icmp", "sctp", "ipv6-icmp", "icmpv6") and not (
                    proto.isdigit() and 0 <= int(proto) <= 255):
                raise BadRequest(f"Security group rule protocol {proto} not supported.")
        lo, hi = body.get("port_range_min"), body.get("port_range_max")
        try:
            lo = None if lo is None else int(lo)
            hi = None if hi is None else int(hi)
        except (TypeError, ValueError) as exc:
            raise BadRequest("port_range_min/max must be integers") from exc
        if proto in ("tcp", "udp", "sctp", "6", "17", "132"):
            if lo is not None and hi is None:
                hi = lo
            if lo is not None and not (1 <= lo <= hi <= 65535):  # type: ignore[operator]
                raise BadRequest("For TCP/UDP protocols, port_range_min must be <= "
                                 "port_range_max and both within 1-65535.")
        elif (lo is not None or hi is not None) and proto not in ("icmp", "1", "ipv6-icmp", "icmpv6"):
            raise BadRequest("Port ranges need a protocol of tcp, udp, sctp or icmp.")
        prefix = body.get("remote_ip_prefix")
        remote_group = body.get("remote_group_id")
        if prefix and remote_group:
            raise BadRequest("Only remote_ip_prefix or remote_group_id may be provided.")
        if prefix:
            try:
                net = ipaddress.ip_network(prefix, strict=False)
            except ValueError as exc:
                raise BadRequest(f"Invalid remote_ip_prefix {prefix}") from exc
            if (net.version == 4) != (ethertype == "IPv4"):
                raise BadRequest(f"Conflicting value ethertype {ethertype} for CIDR {prefix}")
            prefix = str(net)
        if remote_group:
            self.t.security_groups.require(remote_group)
        async with self.lock, self._reserve(project_id, "security_group_rule") as held:
            ts = now_iso()
            rule = SecurityGroupRule(
                id=str(uuid.uuid4()), security_group_id=sg.id, project_id=project_id,
                direction=direction, ethertype=ethertype, protocol=proto, port_range_min=lo,
                port_range_max=hi, remote_ip_prefix=prefix, remote_group_id=remote_group,
                description=body.get("description") or "", created_at=ts, updated_at=ts)
            key = self._rule_key(rule)
            for other in self.t.sg_rules.list(lambda r: r.security_group_id == sg.id):
                if self._rule_key(other) == key:
                    raise Conflict(f"Security group rule already exists. Rule id is {other.id}.")
            await held.store(self.t.sg_rules.save(rule))
        await self.sync()
        return rule

    @staticmethod
    def _rule_key(r: SecurityGroupRule) -> tuple:
        prefix = r.remote_ip_prefix
        if prefix in ("0.0.0.0/0", "::/0"):
            prefix = None
        return (r.direction, r.ethertype, r.protocol, r.port_range_min, r.port_range_max,
                prefix, r.remote_group_id)

    async def delete_security_group_rule(self, rule_id: str) -> None:
        async with self.lock:
            self.t.sg_rules.require(rule_id)
            await self.t.sg_rules.delete(rule_id)
        await self.sync()
