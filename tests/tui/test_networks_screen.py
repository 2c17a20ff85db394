"""The networks screen over the real Neutron component (needs root: it makes a namespace,
removed afterwards): create a network and a subnet through the forms, add a security-group
rule, and read the DHCP lease table from GET /network/v2.0/monostack-dhcp-leases."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable

from tests.tui.cloud_seed import network_possible
from tests.tui.harness import FROZEN, ThreadDaemon, log_in, settle, wait_for_table, fill_form
from tests.tui.test_pilot import _rows, _wait

pytestmark = pytest.mark.skipif(not network_possible(),
                                reason="the network component needs root, ip and nft")


@pytest.fixture(scope="module")
def net_daemon(tmp_path_factory):
    daemon = ThreadDaemon(tmp_path_factory.mktemp("net-daemon"),
                          ["network"]).start()
    try:
        yield daemon
    finally:
        daemon.stop()


async def test_create_network_subnet_rule_and_read_leases(net_daemon, tmp_path):
    from appliance.network.records import LeaseRecord, LeaseState
    manager = net_daemon.daemon.appliance.ctx.components.network.manager
    private = next(n for n in manager.networks.list() if n.name == "private")
    net_daemon.call(manager.leases.save(LeaseRecord(
        id=f"{private.id}:fa:16:3e:00:00:01", network_id=private.id, mac="fa:16:3e:00:00:01",
        ip="10.0.0.9", state=LeaseState.ACTIVE, hostname="probe", granted_at=FROZEN,
        expires_at=FROZEN + 3600, updated_at=FROZEN)))
    app = net_daemon.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        await pilot.press("5")
        await wait_for_table(pilot, "#t-networks")
        screen = app.screen
        await pilot.press("n")
        await fill_form(pilot, name="blue")
        networks = screen.query_one("#t-networks", DataTable)
        await _wait(pilot, lambda: any(r[0] == "blue" for r in _rows(networks)))

        await pilot.press("right_square_bracket")  # subnets
        await pilot.press("n")
        await settle(pilot)
        blue = next(n["id"] for n in screen.tabs["networks"].rows if n["name"] == "blue")
        await fill_form(pilot, name="blue-subnet", network_id=blue, cidr="10.9.0.0/24")
        subnets = screen.query_one("#t-subnets", DataTable)
        await _wait(pilot, lambda: any(r[0] == "blue-subnet" and r[1] == "blue"
                                       and r[2] == "10.9.0.0/24" for r in _rows(subnets)))

        for _ in range(3):  # ports, groups, rules
            await pilot.press("right_square_bracket")
        await pilot.press("n")
        await settle(pilot)
        group = screen.tabs["security-groups"].rows[0]["id"]
        await fill_form(pilot, security_group_id=group, protocol="tcp", port_min="22")
        rules = screen.query_one("#t-security-group-rules", DataTable)
        await _wait(pilot, lambda: any(r[3] == "tcp" and r[4] == "22" for r in _rows(rules)))

        for _ in range(3):  # routers, FIPs, leases
            await pilot.press("right_square_bracket")
        await settle(pilot)
        leases = screen.query_one("#t-leases", DataTable)
        assert _rows(leases) == [["10.0.0.9", "fa:16:3e:00:00:01", "probe", "private",
                                  "ACTIVE", "in 1h 0m"]]
