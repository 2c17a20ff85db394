"""The network component's records: what is durable about networks, subnets, ports, security
groups, routers, floating IPs, DHCP leases and quotas.

Flat dataclasses (the state store keeps them as JSON documents). Router interfaces, router
gateways and floating IP addresses are ports owned by the network service (`device_owner`
"network:…"), as in Neutron: one allocation path (IPAM) and one duplicate check serve them all.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


class PortOwner(StrEnum):
    """device_owner values the network service itself gives ports."""

    ROUTER_INTERFACE = "network:router_interface"
    ROUTER_GATEWAY = "network:router_gateway"
    FLOATINGIP = "network:floatingip"
    DHCP = "network:dhcp"


#: Owners whose addresses live on the data-plane bridge (the namespace answers for them).
BRIDGE_OWNED = frozenset({PortOwner.ROUTER_INTERFACE, PortOwner.ROUTER_GATEWAY,
                          PortOwner.FLOATINGIP, PortOwner.DHCP})


class LeaseState(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    DECLINED = "declined"


@dataclass
class Network:
    id: str
    name: str
    project_id: str
    admin_state_up: bool = True
    shared: bool = False
    external: bool = False
    mtu: int = 1500
    port_security_enabled: bool = True
    description: str = ""
    status: str = "ACTIVE"
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0

    @property
    def bridge(self) -> str:
        """The Linux bridge of this network: "msb" + 11 id chars fits IFNAMSIZ (15)."""
        return bridge_name(self.id)


def bridge_name(network_id: str) -> str:
    return "msb" + network_id.replace("-", "")[:11]


def tap_name(port_id: str) -> str:
    """Neutron's convention: "tap" + the first 11 characters of the port id."""
    return ("tap" + port_id)[:14]


@dataclass
class Subnet:
    id: str
    name: str
    network_id: str
    project_id: str
    cidr: str
    gateway_ip: str | None = None
    ip_version: int = 4
    #: [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    allocation_pools: list[dict[str, str]] = field(default_factory=list)
    dns_nameservers: list[str] = field(default_factory=list)
    #: [{"destination": "169.254.169.254/32", "nexthop": "10.0.0.3"}]
    host_routes: list[dict[str, str]] = field(default_factory=list)
    enable_dhcp: bool = True
    #: the DHCP server's address when the subnet has no gateway (kept out of the pools)
    dhcp_address: str | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0


@dataclass
class Port:
    id: str
    name: str
    network_id: str
    project_id: str
    mac_address: str
    #: [{"subnet_id": …, "ip_address": …}]
    fixed_ips: list[dict[str, str]] = field(default_factory=list)
    device_id: str = ""
    device_owner: str = ""
    admin_state_up: bool = True
    status: str = "DOWN"
    port_security_enabled: bool = True
    security_groups: list[str] = field(default_factory=list)
    #: [{"ip_address": "10.0.0.50" | "10.0.0.0/28", "mac_address": …}]
    allowed_address_pairs: list[dict[str, str]] = field(default_factory=list)
    extra_dhcp_opts: list[dict[str, Any]] = field(default_factory=list)
    binding_host_id: str = ""
    tap_name: str = ""
    #: compute's allocation that made this port ("<hash of the request list>:<index>"),
    #: so a repeated allocate_ports call finds it again; empty for user-made ports
    binding_request: str = ""
    #: made by allocate_ports (deleted with the instance) rather than handed in by the user
    auto_delete: bool = False
    #: when compute bound it (wall clock): the order of the instance's NICs
    bound_at: float = 0.0
    description: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0

    def ips(self) -> list[str]:
        return [f["ip_address"] for f in self.fixed_ips]


@dataclass
class SecurityGroup:
    id: str
    name: str
    project_id: str
    description: str = ""
    stateful: bool = True
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0


@dataclass
class SecurityGroupRule:
    id: str
    security_group_id: str
    project_id: str
    direction: str  # "ingress" | "egress"
    ethertype: str = "IPv4"
    protocol: str | None = None  # "tcp" | "udp" | "icmp" | a number as text | None (any)
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    description: str = ""
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0


@dataclass
class Router:
    id: str
    name: str
    project_id: str
    admin_state_up: bool = True
    status: str = "ACTIVE"
    gateway_network_id: str | None = None
    gateway_port_id: str | None = None
    enable_snat: bool = True
    description: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0


@dataclass
class FloatingIP:
    id: str
    project_id: str
    floating_network_id: str
    floating_ip_address: str
    #: the network:floatingip port holding the address on the external network
    floating_port_id: str
    port_id: str | None = None
    fixed_ip_address: str | None = None
    router_id: str | None = None
    status: str = "DOWN"
    description: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    revision_number: int = 0


@dataclass
class LeaseRecord:
    """The durable copy of what the DHCP server granted (id = "<network id>:<mac>")."""

    id: str
    network_id: str
    mac: str
    ip: str
    state: LeaseState
    bridge: str = ""
    port_id: str | None = None
    project_id: str | None = None
    hostname: str | None = None
    client_id: str | None = None
    granted_at: float = 0.0
    expires_at: float = 0.0
    renewed_at: float | None = None
    updated_at: float = 0.0


QUOTA_DEFAULTS: dict[str, int] = {
    "network": 100,
    "subnet": 100,
    "port": 500,
    "router": 10,
    "floatingip": 50,
    "security_group": 10,
    "security_group_rule": 100,
}


@dataclass
class QuotaSet:
    """A project's overrides of QUOTA_DEFAULTS (id = project id); -1 means unlimited."""

    id: str
    limits: dict[str, int] = field(default_factory=dict)

    def limit(self, resource: str) -> int:
        return self.limits.get(resource, QUOTA_DEFAULTS[resource])
