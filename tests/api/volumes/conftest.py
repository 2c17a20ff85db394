"""An in-process daemon with images and volumes; helpers that wait for Cinder's async steps."""
from __future__ import annotations

import asyncio

import pytest

from appliance.client import MonostackClient
from tests.api.images.conftest import make_qcow2, needs_qemu_img  # noqa: F401
from tests.daemon import InProcessDaemon, write_config

COMPONENTS = ["images",
              "volumes"]


@pytest.fixture
async def daemon(tmp_path):
    _, config = write_config(tmp_path, components=["images", "volumes"])
    async with InProcessDaemon(config, components=COMPONENTS) as d:
        yield d


@pytest.fixture
async def admin(daemon):
    client = await daemon.admin_client()
    try:
        yield client
    finally:
        await client.close()


def vpath(client: MonostackClient, rest: str = "") -> str:
    return f"/volume/v3/{client.session.project_id}{rest}"


async def wait_status(client: MonostackClient, kind: str, obj_id: str, *wanted: str,
                      timeout: float = 60.0) -> dict:
    key = kind.rstrip("s")
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await client.get(vpath(client, f"/{kind}/{obj_id}")))[key]
        if body["status"] in wanted:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{kind} {obj_id} stuck in {body['status']} (wanted {wanted}): "
                                 f"{body.get('monostack_last_error')}")
        await asyncio.sleep(0.05)


async def create_volume(client: MonostackClient, wait: bool = True, **fields) -> dict:
    body = {"name": fields.pop("name", "vol"), "size": fields.pop("size", 1), **fields}
    vol = (await client.post(vpath(client, "/volumes"), {"volume": body}))["volume"]
    assert vol["status"] == "creating"
    if wait:
        vol = await wait_status(client, "volumes", vol["id"], "available", "error")
        assert vol["status"] == "available", vol.get("monostack_last_error")
    return vol


async def action(client: MonostackClient, volume_id: str, name: str, args=None):
    return await client.post(vpath(client, f"/volumes/{volume_id}/action"), {name: args})
