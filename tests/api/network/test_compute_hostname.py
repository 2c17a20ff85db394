"""The DHCP host name of an instance's port comes from compute's seam (instance_hostname),
not from compute's records read directly: a server named "Web Server_1" is offered as
"web-server-1"; without compute the port's own name (or its address) is used."""
from __future__ import annotations

from tests.api.compute.conftest import wait_status
from tests.compute_support import COMPONENTS as IMAGE_COMPONENTS, TEST_IMAGE_ID, seed_test_image
from tests.api.network.conftest import needs_root
from tests.daemon import InProcessDaemon, write_config

pytestmark = needs_root
NETWORK = "network"


async def test_dhcp_hostname_is_the_instance_hostname(tmp_path):
    _, config = write_config(tmp_path, components=["images", "network", "compute"])
    async with InProcessDaemon(config, components=[IMAGE_COMPONENTS[0], NETWORK,
                                                   *IMAGE_COMPONENTS[1:]]) as daemon:
        client = await daemon.admin_client()
        try:
            await seed_test_image(client, tmp_path)
            sid = (await client.post("/compute/v2.1/servers", {"server": {
                "name": "Web Server_1", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))[
                "server"]["id"]
            await wait_status(client, sid, "ACTIVE")
            comps = daemon.appliance.ctx.components
            assert comps.compute.instance_hostname(sid) == "web-server-1"
            assert comps.compute.instance_hostname("no-such-instance") is None
            network = comps.network.manager
            (port,) = network.ports.list(lambda p: p.device_id == sid)
            bridge = network.networks.require(port.network_id).bridge
            assert network.dataplane._lookup(bridge, port.mac_address).hostname == "web-server-1"
            await client.delete(f"/compute/v2.1/servers/{sid}")
        finally:
            await client.close()
