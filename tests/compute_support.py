"""Compute tests run over the real image and volume components: helpers shared by tests/api,
tests/integration, tests/reliability and the benchmarks.

Images reach the daemon the way a user's would: `POST /image/v2/images` + `PUT …/file`
through the Glance API (verified by the image component's format inspector), never by writing
into its store behind its back.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import AsyncIterator

from appliance.client import MonostackClient

#: the components a compute test daemon runs (config names, appliance/service.py order)
COMPONENTS = ["images", "volumes", "compute"]
#: the same, for write_config(components=…)
CONFIG_COMPONENTS = COMPONENTS

#: a fixed id so tests can name the small test image as a constant (Glance accepts `id`)
TEST_IMAGE_ID = "0c0ffee0-0000-4000-8000-000000000001"
TEST_IMAGE_NAME = "cirros"


def make_tiny_qcow2(path: Path, size: str = "64M") -> Path:
    """An empty qcow2 made by qemu-img: enough for test:///default, which never reads it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size],
                       check=True, capture_output=True)
    return path


async def _chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


async def upload_image(client: MonostackClient, path: Path, *, name: str,
                       image_id: str | None = None, disk_format: str = "qcow2",
                       visibility: str = "public", **properties: str) -> str:
    """Create an image through Glance v2 and stream `path` into it; its id (status active)."""
    body = {"name": name, "disk_format": disk_format, "container_format": "bare",
            "visibility": visibility, **properties}
    if image_id is not None:
        body["id"] = image_id
    img = await client.post("/image/v2/images", body)
    status, _ = await client.upload("PUT", f"/image/v2/images/{img['id']}/file",
                                    _chunks(Path(path)))
    assert status == 204, status
    shown = await client.get(f"/image/v2/images/{img['id']}")
    assert shown["status"] == "active", shown
    return img["id"]


async def seed_test_image(client: MonostackClient, scratch: Path) -> str:
    """The small public test image every test:///default compute test boots (TEST_IMAGE_ID)."""
    from appliance.errors import NotFound
    try:
        if (await client.get(f"/image/v2/images/{TEST_IMAGE_ID}"))["status"] == "active":
            return TEST_IMAGE_ID  # a restarted daemon on the same state keeps it
    except NotFound:
        pass
    path = make_tiny_qcow2(Path(scratch) / "cirros-test.qcow2")
    return await upload_image(client, path, name=TEST_IMAGE_NAME, image_id=TEST_IMAGE_ID)
