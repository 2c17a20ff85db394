from tests.api.compute.conftest import wait_status
from tests.compute_support import TEST_IMAGE_ID

H = {"OpenStack-API-Version": "compute 2.60"}


async def test_boot_and_delete(nova, compute_daemon):
    body = {"server": {"name": "vm1", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}
    created = (await nova.post("/compute/v2.1/servers", body, headers=H))["server"]
    s = await wait_status(nova, created["id"], "ACTIVE", "ERROR")
    assert s["status"] == "ACTIVE", s
    await nova.delete(f"/compute/v2.1/servers/{created['id']}")
