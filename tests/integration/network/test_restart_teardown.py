"""Restarts reuse the data plane and remove what no record owns; teardown is explicit."""
from __future__ import annotations

import os
import subprocess

import pytest

from appliance.network.firewall import list_ruleset
from appliance.network.netlink import DataPlane, list_namespaces
from tests.daemon import ROOT, InProcessDaemon, _env, monostack_cmd, remove_namespace, write_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]
N = "/network/v2.0"


async def test_restart_reuses_bridges_removes_strays_rebuilds_rules_then_teardown(tmp_path):
    path, config = write_config(tmp_path, components=["network"])
    ns = config.network.namespace
    dp = DataPlane(ns)
    peer = DataPlane(ns + "-peer")
    try:
        async with InProcessDaemon(config, keep_namespace=True) as daemon:
            admin = await daemon.admin_client()
            try:
                net = (await admin.get(f"{N}/networks?name=private"))["networks"][0]
                port = (await admin.post(f"{N}/ports", {"port": {"network_id": net["id"]}}))["port"]
            finally:
                await admin.close()
        bridge = "msb" + net["id"].replace("-", "")[:11]
        assert ns in list_namespaces()  # stop never removes the namespace
        before = {b.name: b.index for b in await dp.list_bridges()}
        assert list(before) == [bridge]
        # strays: a bridge and a port nobody owns, and a port that is a record's
        await dp.ensure_bridge("msbstray", 1500, "192.0.2.1/24")
        await peer.ensure_namespace()
        tap = port["binding:vif_details"]["tap_name"]
        await dp.make_veth_pair(bridge, "vstray0", peer.namespace)
        await dp.make_veth_pair(bridge, tap, peer.namespace, peer_ifname="eth1")
        assert {"vstray0", tap} <= {p.name for p in await dp.list_ports()}
        # a flushed ruleset comes back from state
        subprocess.run(["ip", "netns", "exec", ns, "nft", "flush", "ruleset"], check=True)
        async with InProcessDaemon(config, keep_namespace=True) as daemon:
            after = {b.name: b.index for b in await dp.list_bridges()}
            assert after == before  # the same bridge, reused (same ifindex)
            assert [b.addresses for b in await dp.list_bridges()] == [("10.0.0.1/24",)]
            ports = {p.name for p in await dp.list_ports()}
            assert "vstray0" not in ports and tap in ports
            tables = {i["table"]["name"] for i in (await list_ruleset(ns))["nftables"] if "table" in i}
            assert tables == {"monostack", "monostack_spoof"}
            assert (await daemon.admin_client()).session is not None
            # teardown refuses while a daemon owns the state dir
            out = subprocess.run(monostack_cmd("--config", str(path), "network", "teardown"),
                                 cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
            assert out.returncode != 0 and "another monostack daemon" in out.stderr
            assert ns in list_namespaces()
        out = subprocess.run(monostack_cmd("--config", str(path), "network", "teardown"),
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert ns not in list_namespaces()
    finally:
        await peer.delete_namespace()
        await dp.close()
        remove_namespace(config)
