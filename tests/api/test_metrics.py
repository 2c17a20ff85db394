"""GET /metrics: Prometheus' text format (parsed with prometheus-client's own parser), admin
token or local socket only, and its counters move as the cloud is used."""
from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.compute_support import COMPONENTS, TEST_IMAGE_ID, seed_test_image
from tests.api.compute.conftest import wait_status
from tests.daemon import InProcessDaemon, write_config


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples, name, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


@pytest.fixture
async def cloud(tmp_path):
    _, config = write_config(tmp_path, components=["images", "volumes", "compute", "objects"])
    async with InProcessDaemon(config, components=[
            *COMPONENTS, "objects"]) as daemon:
        client = await daemon.admin_client()
        try:
            await seed_test_image(client, tmp_path)
            yield daemon, client
        finally:
            await client.close()


async def _scrape(daemon, token=None, local=True) -> tuple[int, str]:
    if local:
        conn = aiohttp.UnixConnector(path=str(daemon.config.api.socket))
        async with aiohttp.ClientSession(connector=conn) as http:
            async with http.get("http://local/metrics") as r:
                return r.status, await r.text()
    async with aiohttp.ClientSession() as http:
        headers = {"X-Auth-Token": token} if token else {}
        async with http.get(daemon.url + "/metrics", headers=headers) as r:
            return r.status, await r.text()


async def test_metrics_move_with_the_cloud(cloud):
    daemon, client = cloud
    status, before = await _scrape(daemon)
    assert status == 200
    b = _samples(before)
    sid = (await client.post("/compute/v2.1/servers", {"server": {
        "name": "metered", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
    await wait_status(client, sid, "ACTIVE")
    await client.put(f"/swift/v1/AUTH_{client.session.project_id}/mc")
    status, after = await _scrape(daemon, client.session.token, local=False)
    assert status == 200
    a = _samples(after)
    assert _sum(a, "monostack_api_requests_total", service="compute", method="POST") > \
        _sum(b, "monostack_api_requests_total", service="compute", method="POST")
    assert _sum(a, "monostack_api_request_duration_seconds_count", service="compute") > 0
    assert _sum(a, "monostack_compute_task_duration_seconds_count", action="build",
                result="success") == 1
    assert _sum(a, "monostack_guests", vm_state="active") == 1
    assert _sum(a, "monostack_host_allocated", resource="vcpus") == 1
    assert _sum(a, "monostack_host_capacity", resource="vcpus") >= 1
    assert _sum(a, "monostack_state_fsync_seconds_count") > _sum(
        b, "monostack_state_fsync_seconds_count")
    assert _sum(a, "monostack_state_journal_bytes") > 0
    assert _sum(a, "monostack_libvirt_connected") == 1
    assert _sum(a, "monostack_object_store_containers") == 1
    assert ("monostack_object_auditor_passes_total", ()) in a


async def test_metrics_are_for_admins_and_the_local_socket(cloud):
    daemon, client = cloud
    assert (await _scrape(daemon, local=False))[0] == 401
    assert (await _scrape(daemon, "garbage", local=False))[0] == 401
    proj = (await client.post("/v3/projects", {"project": {"name": "p-m"}}))["project"]
    user = (await client.post("/v3/users", {"user": {"name": "u-m", "password": "pw"}}))["user"]
    role = (await client.get("/v3/roles?name=member"))["roles"][0]
    await client.put(f"/v3/projects/{proj['id']}/users/{user['id']}/roles/{role['id']}")
    from appliance.client import MonostackClient
    member = MonostackClient(socket_path=daemon.config.api.socket)
    try:
        await member.login("u-m", "pw", "p-m")
        assert (await _scrape(daemon, member.session.token, local=False))[0] == 403
    finally:
        await member.close()
