"""DataPlane and firewall against the kernel, in a namespace this test creates and removes."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from appliance.errors import Conflict, NotFound
from appliance.network.firewall import FirewallError, apply_ruleset, list_ruleset
from appliance.network.netlink import DataPlane, list_namespaces

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


@pytest.fixture
async def plane():
    dp = DataPlane(f"msdp-{uuid.uuid4().hex[:8]}")
    try:
        await dp.ensure_namespace()
        yield dp
    finally:
        await dp.delete_namespace()
    assert dp.namespace not in list_namespaces()


async def test_namespace_and_bridge_are_idempotent_and_reconcile_the_gateway(plane):
    await plane.ensure_namespace()  # again: no error
    await plane.ensure_bridge("br-one", 1450, "10.1.0.1/24")
    await plane.ensure_bridge("br-one", 1450, "10.1.0.1/24")
    await plane.ensure_bridge("br-one", 1400, "10.2.0.1/24")  # gateway changed: old one goes
    await plane.ensure_bridge("br-two", 1500, None)
    bridges = {b.name: b for b in await plane.list_bridges()}
    assert bridges["br-one"].addresses == ("10.2.0.1/24",) and bridges["br-one"].mtu == 1400
    assert bridges["br-one"].up and bridges["br-two"].addresses == ()
    await plane.delete_bridge("br-two")
    await plane.delete_bridge("br-two")  # missing is fine
    assert [b.name for b in await plane.list_bridges()] == ["br-one"]


async def test_tap_from_the_root_namespace_is_moved_and_enslaved(plane):
    tap = f"tap{uuid.uuid4().hex[:8]}"
    await plane.ensure_bridge("br-one", 1450, "10.1.0.1/24")
    subprocess.run(["ip", "tuntap", "add", "mode", "tap", "name", tap], check=True)
    try:
        port = await plane.attach_tap(tap, "br-one")
        assert (port.bridge, port.mtu) == ("br-one", 1450)
        again = await plane.attach_tap(tap, "br-one")  # already here: idempotent
        assert again.index == port.index
        assert [p.name for p in await plane.list_ports("br-one")] == [tap]
        root = subprocess.run(["ip", "link", "show", tap], capture_output=True)
        assert root.returncode != 0  # gone from the root namespace
        with pytest.raises(NotFound):
            await plane.attach_tap("tapmissing0", "br-one")
        with pytest.raises(NotFound):
            await plane.attach_tap(tap, "br-nothere")
        await plane.delete_port(tap)
        assert await plane.list_ports() == []
    finally:
        subprocess.run(["ip", "link", "del", tap], capture_output=True)


async def test_a_non_bridge_name_clash_is_a_conflict(plane):
    peer = DataPlane(f"msg-{uuid.uuid4().hex[:8]}")
    try:
        await peer.ensure_namespace()
        await plane.ensure_bridge("br-one", 1500, None)
        await plane.make_veth_pair("br-one", "vclash", peer.namespace)
        with pytest.raises(Conflict):
            await plane.ensure_bridge("vclash", 1500, None)
    finally:
        await peer.delete_namespace()


async def test_socket_in_namespace_binds_to_the_bridge(plane):
    await plane.ensure_bridge("br-one", 1500, "10.1.0.1/24")
    first = await plane.socket_in_namespace("br-one")
    await plane.ensure_bridge("br-two", 1500, "10.3.0.1/24")
    second = await plane.socket_in_namespace("br-two")  # same port, other device
    try:
        assert first.getsockname() == ("0.0.0.0", 67) == second.getsockname()
    finally:
        first.close()
        second.close()
    with pytest.raises(NotFound):
        await plane.socket_in_namespace("br-absent")


async def test_firewall_ruleset_is_applied_atomically_in_the_namespace(plane):
    table = {"family": "inet", "name": "monostack"}
    good = {"nftables": [
        {"add": {"table": table}},
        {"flush": {"table": table}},
        {"add": {"chain": {"family": "inet", "table": "monostack", "name": "fwd", "type": "filter",
                           "hook": "forward", "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {"family": "inet", "table": "monostack", "chain": "fwd", "expr": [{"drop": None}]}}},
    ]}
    await apply_ruleset(plane.namespace, good)
    await apply_ruleset(plane.namespace, good)  # flush + re-add: same result
    bad = {"nftables": good["nftables"][:2] + [
        {"add": {"rule": {"family": "inet", "table": "monostack", "chain": "nochain", "expr": [{"drop": None}]}}}]}
    with pytest.raises(FirewallError):
        await apply_ruleset(plane.namespace, bad)
    rules = [x["rule"] for x in (await list_ruleset(plane.namespace))["nftables"] if "rule" in x]
    assert len(rules) == 1  # the failed batch (including its flush) changed nothing
    with pytest.raises(NotFound):
        await apply_ruleset("msdp-does-not-exist", good)
