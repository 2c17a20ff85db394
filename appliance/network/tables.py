"""The network service's records: one typed repository per table, all over one store.

The rooms (routing.py, security_groups.py, compute_binding.py, the manager's networks,
subnets and ports) are handed this bundle instead of the manager, so each can be built over a
store of its own and judged alone; a write spanning tables goes through `store.commit` as one
transaction.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.network.records import (
    FloatingIP,
    LeaseRecord,
    Network,
    Port,
    QuotaSet,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from appliance.state import Repository, Store


@dataclass(frozen=True)
class NetworkTables:
    store: Store
    networks: Repository[Network]
    subnets: Repository[Subnet]
    ports: Repository[Port]
    security_groups: Repository[SecurityGroup]
    sg_rules: Repository[SecurityGroupRule]
    routers: Repository[Router]
    floatingips: Repository[FloatingIP]
    leases: Repository[LeaseRecord]
    quotas: Repository[QuotaSet]

    @classmethod
    def over(cls, store: Store) -> "NetworkTables":
        return cls(
            store=store,
            networks=Repository(store, "networks", Network, kind="Network"),
            subnets=Repository(store, "subnets", Subnet, kind="Subnet"),
            ports=Repository(store, "ports", Port, kind="Port"),
            security_groups=Repository(store, "security_groups", SecurityGroup,
                                       kind="Security group"),
            sg_rules=Repository(store, "security_group_rules", SecurityGroupRule,
                                kind="Security group rule"),
            routers=Repository(store, "routers", Router, kind="Router"),
            floatingips=Repository(store, "floatingips", FloatingIP, kind="Floating IP"),
            leases=Repository(store, "dhcp_leases", LeaseRecord, kind="Lease"),
            quotas=Repository(store, "network_quotas", QuotaSet, kind="Quota"),
        )
