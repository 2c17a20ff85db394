"""A ruleset changed port by port equals the one built whole from the same records.

Port creates, updates and deletes change only their own part of the namespace's nftables
ruleset (network/rules_applied.py); after each step of a sequence that exercises what a part
holds — shared addresses (allowed pairs: the lowest port id gets the address), remote-group
members, groups added and removed, port security switched off and on, fixed IPs changed,
ports deleted — the kernel's ruleset is listed, the whole ruleset is then rebuilt from the
records and applied, and the two listings must be the same. The daemon's namespace is its
own (unique name), removed on exit.
"""
from __future__ import annotations

import os
import shutil

import pytest

from appliance.network.firewall import list_ruleset
from tests.daemon import InProcessDaemon, write_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft"),
]
N = "/network/v2.0"


def _normal(listing: dict) -> dict:
    """Tables, chains, sets and maps as sets; each chain's rules in order; no handles."""
    objects: dict = {"chains": set(), "sets": {}, "rules": {}}
    for item in listing["nftables"]:
        (kind, body), = item.items()
        if kind == "chain":
            objects["chains"].add((body["family"], body["table"], body["name"],
                                   body.get("hook"), body.get("prio")))
        elif kind in ("set", "map"):
            elems = body.get("elem", [])
            objects["sets"][(body["family"], body["table"], body["name"])] = sorted(
                repr(e) for e in elems)
        elif kind == "rule":
            objects["rules"].setdefault((body["family"], body["table"], body["chain"]),
                                        []).append(repr(body["expr"]))
    return objects


def _dataplane(daemon):
    return daemon.appliance.ctx.components.network.manager.dataplane


async def _port_by_port(daemon, change) -> dict:
    """Make the change; it must have taken the port-by-port path (the applied parts are
    the same object, not a rebuild's); then compare with the whole ruleset."""
    applied = _dataplane(daemon)._applied
    result = await change
    assert _dataplane(daemon)._applied is applied, "the change rebuilt the whole ruleset"
    await _same_as_whole(daemon)
    return result


async def _same_as_whole(daemon) -> dict:
    dataplane = _dataplane(daemon)
    namespace = daemon.config.network.namespace
    assert dataplane.last_error is None
    changed = _normal(await list_ruleset(namespace))
    await dataplane._sync_dataplane()  # the whole ruleset, built from the records
    whole = _normal(await list_ruleset(namespace))
    assert changed == whole
    return whole


@pytest.fixture
async def net_daemon(tmp_path):
    _, config = write_config(tmp_path, components=["network"])
    async with InProcessDaemon(config) as daemon:
        yield daemon


async def test_ports_changed_one_by_one_leave_the_ruleset_a_restart_would_build(net_daemon):
    client = await net_daemon.admin_client()
    try:
        net = (await client.post(f"{N}/networks", {"network": {"name": "n"}}))["network"]
        await client.post(f"{N}/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                      "cidr": "10.77.0.0/24"}})
        web = (await client.post(f"{N}/security-groups",
                                 {"security_group": {"name": "web"}}))["security_group"]
        await client.post(f"{N}/security-group-rules", {"security_group_rule": {
            "security_group_id": web["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 80, "port_range_max": 80, "remote_group_id": web["id"]}})
        await _same_as_whole(net_daemon)

        async def port(**extra):
            return (await _port_by_port(net_daemon, client.post(f"{N}/ports", {"port": {
                "network_id": net["id"], **extra}})))["port"]

        a = await port(security_groups=[web["id"]])
        b = await port(allowed_address_pairs=[{"ip_address": a["fixed_ips"][0]["ip_address"]}])
        c = await port(port_security_enabled=False)
        whole = await _same_as_whole(net_daemon)
        member_sets = [k for k in whole["sets"] if k[2].startswith("rg_")]
        assert member_sets and any(a["fixed_ips"][0]["ip_address"] in repr(whole["sets"][k])
                                   for k in member_sets)
        for change in ({"security_groups": [web["id"]]}, {"security_groups": []},
                       {"allowed_address_pairs": []},
                       {"fixed_ips": [{"ip_address": "10.77.0.200"}]},
                       {"port_security_enabled": False}):
            await _port_by_port(net_daemon,
                                client.put(f"{N}/ports/{b['id']}", {"port": change}))
        await _port_by_port(net_daemon, client.put(f"{N}/ports/{c['id']}", {"port": {
            "port_security_enabled": True}}))
        await _port_by_port(net_daemon, client.put(f"{N}/ports/{b['id']}", {"port": {
            "port_security_enabled": True, "security_groups": [web["id"]],
            "allowed_address_pairs": [{"ip_address": a["fixed_ips"][0]["ip_address"]}]}}))
        # Two groups, prefixes that overlap (collapsed into one interval element), a pair
        # with its own MAC; a second port with the same groups adds elements, not chains.
        default = (await client.get(f"{N}/security-groups?name=default"))["security_groups"][0]
        d = await port(security_groups=[web["id"], default["id"]], allowed_address_pairs=[
            {"ip_address": "10.77.0.128/28"}, {"ip_address": "10.77.0.128/27"},
            {"ip_address": "10.77.0.131"}, {"ip_address": "10.77.0.140",
                                            "mac_address": "fa:16:3e:00:00:01"}])
        chains = (await _same_as_whole(net_daemon))["chains"]
        e = await port(security_groups=[default["id"], web["id"]])
        assert (await _same_as_whole(net_daemon))["chains"] == chains
        for gone in (d, e, a, b, c):  # the lowest id's address passes on, then none
            await _port_by_port(net_daemon, client.delete(f"{N}/ports/{gone['id']}"))
        whole = await _same_as_whole(net_daemon)
        assert not any(k[2].startswith(("spoof_", "sg_")) for k in whole["rules"])
        assert all(not elems for k, elems in whole["sets"].items() if k[2].startswith("spoof"))
    finally:
        await client.close()
