"""Neutron v2.0 request bodies: Neutron's attribute maps (neutron-lib api/definitions) with its
own list limits (max_fixed_ips_per_port 5, max_allowed_address_pair 10, max_dns_nameservers 5,
max_subnet_host_routes 20, 50 tags). Booleans are JSON booleans: `admin_state_up: "yes"` is a
400, as is any attribute Neutron would call unrecognised.
"""
from __future__ import annotations

from appliance.api.schemas.types import (
    BOOLEAN, CIDR, IP_ADDRESS, MAC, MAX_INT, NULLABLE_BOOLEAN, NULLABLE_REF, REF, array,
    integer, obj, string, wrapped,
)

TAG = string(255, 1, pattern="^[^,\\x00-\\x1f\\x7f-\\x9f]*\\Z",
             reason="1-255 printable characters without ','")
TAGS = array(TAG, 50)
NAME = string(255, 0, nullable=True, reason="at most 255 printable characters")
DESCRIPTION = string(255, 0, nullable=True, pattern="^[^\\x00]*\\Z", reason="text without NUL")
PROJECT = string(255, 1, pattern="^[a-zA-Z0-9-]*\\Z", reason="a project id")
NULLABLE_IP = {"type": ["string", "null"], "format": "ip-address", "maxLength": 64}
_STD = {"name": NAME, "description": DESCRIPTION, "tags": TAGS, "project_id": PROJECT,
        "tenant_id": PROJECT}


_NETWORK = {**_STD, "admin_state_up": BOOLEAN, "shared": BOOLEAN, "router:external": BOOLEAN,
            "mtu": integer(68, 9000, nullable=True), "port_security_enabled": BOOLEAN,
            "availability_zone_hints": array(string(255), 8),
            "provider:network_type": {"enum": ["flat", None]},
            "provider:physical_network": NULLABLE_REF,
            "provider:segmentation_id": integer(0, 4094, nullable=True),
            "qos_policy_id": {"type": "null"}, "dns_domain": string(255, nullable=True),
            "is_default": BOOLEAN}
NETWORK_CREATE = wrapped("network", obj(_NETWORK))
NETWORK_UPDATE = wrapped("network", obj({k: v for k, v in _NETWORK.items()
                                         if k not in ("project_id", "tenant_id")}))

_POOL = obj({"start": IP_ADDRESS, "end": IP_ADDRESS}, required=("start", "end"))
_ROUTE = obj({"destination": CIDR, "nexthop": IP_ADDRESS}, required=("destination", "nexthop"))
_SUBNET_MUTABLE = {
    "name": NAME, "description": DESCRIPTION, "tags": TAGS, "enable_dhcp": BOOLEAN,
    "gateway_ip": NULLABLE_IP,
    "allocation_pools": array(_POOL, 64, nullable=True),
    "dns_nameservers": array(IP_ADDRESS, 5, nullable=True),
    "host_routes": array(_ROUTE, 20, nullable=True),
    "service_types": array(string(255), 8), "segment_id": {"type": "null"},
    "dns_publish_fixed_ip": BOOLEAN,
}
SUBNET_CREATE = wrapped("subnet", obj({
    **_SUBNET_MUTABLE, "project_id": PROJECT, "tenant_id": PROJECT,
    "network_id": REF, "cidr": CIDR, "ip_version": {"enum": [4, 6]},
    "subnetpool_id": {"type": "null"}, "use_default_subnetpool": {"enum": [False]},
    "prefixlen": {"type": "null"}, "ipv6_ra_mode": {"type": "null"},
    "ipv6_address_mode": {"type": "null"},
}, required=("network_id", "cidr")))
SUBNET_UPDATE = wrapped("subnet", obj(_SUBNET_MUTABLE))

_FIXED_IP = obj({"subnet_id": REF, "ip_address": IP_ADDRESS})
_PAIR = obj({"ip_address": CIDR, "mac_address": MAC}, required=("ip_address",))
_DHCP_OPT = obj({"opt_name": string(64, 1), "opt_value": string(255, nullable=True),
                 "ip_version": {"enum": [4, 6, None]}}, required=("opt_name",))
_PORT = {
    **_STD, "admin_state_up": BOOLEAN, "mac_address": MAC,
    "fixed_ips": array(_FIXED_IP, 5, nullable=True),
    "device_id": string(255, nullable=True), "device_owner": string(255, nullable=True),
    "security_groups": array(REF, 64, nullable=True),
    "port_security_enabled": NULLABLE_BOOLEAN,
    "allowed_address_pairs": array(_PAIR, 10, nullable=True),
    "binding:host_id": string(255, nullable=True),
    "binding:vnic_type": {"enum": ["normal"]},
    "binding:profile": {"type": ["object", "null"], "maxProperties": 0},
    "extra_dhcp_opts": array(_DHCP_OPT, 32, nullable=True),
    "dns_name": string(255, nullable=True), "qos_policy_id": {"type": "null"},
    "propagate_uplink_status": BOOLEAN,
}
PORT_CREATE = wrapped("port", obj({**_PORT, "network_id": REF}, required=("network_id",)))
PORT_UPDATE = wrapped("port", obj({k: v for k, v in _PORT.items()
                                   if k not in ("project_id", "tenant_id")}))

_SG = {**_STD, "stateful": BOOLEAN}
SECURITY_GROUP_CREATE = wrapped("security_group", obj(_SG))
SECURITY_GROUP_UPDATE = wrapped("security_group", obj({k: v for k, v in _SG.items()
                                                       if k not in ("project_id",
                                                                    "tenant_id")}))
_PORT_NUMBER = integer(0, 65535, nullable=True, digits_too=True)
SECURITY_GROUP_RULE_CREATE = wrapped("security_group_rule", obj({
    "security_group_id": REF, "direction": {"enum": ["ingress", "egress"]},
    "ethertype": {"enum": ["IPv4", "IPv6"]},
    "protocol": {"anyOf": [string(16, pattern="^[a-zA-Z0-9-]*\\Z", reason="a protocol name"),
                           integer(0, 255), {"type": "null"}]},
    "port_range_min": _PORT_NUMBER, "port_range_max": _PORT_NUMBER,
    "remote_ip_prefix": {"type": ["string", "null"], "format": "cidr", "maxLength": 64},
    "remote_group_id": NULLABLE_REF, "remote_address_group_id": {"type": "null"},
    "description": DESCRIPTION, "project_id": PROJECT, "tenant_id": PROJECT,
}, required=("security_group_id", "direction")))

_GATEWAY = {"type": ["object", "null"], "properties": {
    "network_id": REF, "enable_snat": BOOLEAN,
    "external_fixed_ips": array(_FIXED_IP, 4)}, "additionalProperties": False}
_ROUTER = {**_STD, "admin_state_up": BOOLEAN, "external_gateway_info": _GATEWAY,
           "distributed": {"enum": [False]}, "ha": {"enum": [False]},
           "availability_zone_hints": array(string(255), 8),
           "routes": array(_ROUTE, 0), "enable_ndp_proxy": {"enum": [False, None]}}
ROUTER_CREATE = wrapped("router", obj(_ROUTER))
ROUTER_UPDATE = wrapped("router", obj({k: v for k, v in _ROUTER.items()
                                       if k not in ("project_id", "tenant_id")}))
ROUTER_INTERFACE = obj({"subnet_id": REF, "port_id": REF})

_FIP = {"port_id": NULLABLE_REF, "fixed_ip_address": NULLABLE_IP, "description": DESCRIPTION,
        "tags": TAGS}
FLOATINGIP_CREATE = wrapped("floatingip", obj({
    **_FIP, "floating_network_id": REF, "floating_ip_address": NULLABLE_IP,
    "subnet_id": NULLABLE_REF, "project_id": PROJECT, "tenant_id": PROJECT,
    "dns_name": string(255, nullable=True), "dns_domain": string(255, nullable=True),
    "qos_policy_id": {"type": "null"},
}, required=("floating_network_id",)))
FLOATINGIP_UPDATE = wrapped("floatingip", obj(_FIP))

_LIMIT = integer(-1, MAX_INT, digits_too=True)
QUOTA_UPDATE = wrapped("quota", obj({
    **{k: _LIMIT for k in ("network", "subnet", "port", "router", "floatingip",
                           "security_group", "security_group_rule", "rbac_policy",
                           "subnetpool")},
    "force": BOOLEAN, "check_limit": BOOLEAN,
}))

#: collection → the create schema of one item (a bulk create checks every item first)
CREATE = {"networks": NETWORK_CREATE, "subnets": SUBNET_CREATE, "ports": PORT_CREATE,
          "security-groups": SECURITY_GROUP_CREATE,
          "security-group-rules": SECURITY_GROUP_RULE_CREATE, "routers": ROUTER_CREATE,
          "floatingips": FLOATINGIP_CREATE}

#: PUT /{collection}/{id}/tags: the whole tag list at once.
TAGS_REPLACE = obj({"tags": TAGS}, required=("tags",))
