"""The real `openstack` CLI against `monostack serve` with the network component."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.network.conftest import needs_root
from tests.api.test_openstack_cli import openstack
from tests.daemon import DaemonProcess, run_init, write_config

pytestmark = needs_root


@pytest.fixture(scope="module")
def net_cli_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("netcli")
    path, config = write_config(base, components=["network"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()  # also removes the test namespace


def os_json(daemon, *args):
    return json.loads(openstack(daemon, *args, "-f", "json"))


def _parallel(*calls):
    """Independent CLI runs side by side (each `openstack` start costs seconds of imports)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(c[0], *c[1:]) for c in calls]]


def test_openstack_network_commands(net_cli_daemon):
    d = net_cli_daemon
    net, ext, sg, router = _parallel(
        (os_json, d, "network", "create", "cli-net"),
        (os_json, d, "network", "create", "--external", "cli-ext"),
        (os_json, d, "security", "group", "create", "cli-sg"),
        (os_json, d, "router", "create", "cli-router"))
    assert net["name"] == "cli-net" and net["status"] == "ACTIVE"
    assert ext["router:external"] in (True, "External")
    assert sg["name"] == "cli-sg" and router["name"] == "cli-router"
    sn, ext_sn, rule = _parallel(
        (os_json, d, "subnet", "create", "--network", "cli-net", "--subnet-range", "10.1.0.0/24",
         "cli-subnet"),
        (os_json, d, "subnet", "create", "--network", "cli-ext", "--subnet-range",
         "198.51.100.0/24", "--no-dhcp", "cli-ext-subnet"),
        (os_json, d, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port",
         "22", "cli-sg"))
    assert sn["cidr"] == "10.1.0.0/24" and sn["gateway_ip"] == "10.1.0.1"
    assert rule["port_range_min"] == 22 and rule["port_range_max"] == 22
    port, fip, _ = _parallel(
        (os_json, d, "port", "create", "--network", "cli-net", "cli-port"),
        (os_json, d, "floating", "ip", "create", "cli-ext"),
        (openstack, d, "router", "set", "--external-gateway", "cli-ext", "cli-router"))
    assert port["name"] == "cli-port" and port["mac_address"].startswith("fa:16:3e")
    assert fip["floating_ip_address"].startswith("198.51.100.")
    ports, _ = _parallel((os_json, d, "port", "list"),
                         (openstack, d, "router", "add", "subnet", "cli-router", "cli-subnet"))
    assert "cli-port" in {p["Name"] for p in ports}
    assert any("10.1.0." in str(p["Fixed IP Addresses"]) for p in ports)
    openstack(d, "floating", "ip", "set", "--port", "cli-port", fip["floating_ip_address"])
    shown = os_json(d, "floating", "ip", "show", fip["floating_ip_address"])
    assert shown["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]


def test_openstack_tags_and_network_quotas(net_cli_daemon):
    """`network set --tag` goes through the tag sub-resource; `quota set --networks/--ports`
    sends check_limit, which once answered 400."""
    d = net_cli_daemon
    openstack(d, "network", "create", "--tag", "lab", "cli-tagged")
    openstack(d, "network", "set", "--tag", "blue", "cli-tagged")
    assert set(os_json(d, "network", "show", "cli-tagged")["tags"]) == {"lab", "blue"}
    listed = os_json(d, "network", "list", "--tags", "blue")
    assert [n["Name"] for n in listed] == ["cli-tagged"]
    openstack(d, "network", "unset", "--tag", "lab", "cli-tagged")
    assert os_json(d, "network", "show", "cli-tagged")["tags"] == ["blue"]
    openstack(d, "quota", "set", "--networks", "17", "--ports", "90", "admin")
    quota = os_json(d, "quota", "show", "--network", "admin")
    shown = {q["Resource"]: q["Limit"] for q in quota} if isinstance(quota, list) else quota
    assert shown.get("networks") == 17 and shown.get("ports") == 90, quota
