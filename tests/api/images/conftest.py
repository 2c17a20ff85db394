"""An in-process daemon with the image component, clients for several projects, test images."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.client import MonostackClient
from tests.daemon import InProcessDaemon, write_config

IMAGE_COMPONENTS = ["images"]
needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img missing")


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


def make_qcow2(path: Path, size: str = "64M", payload: bytes = b"") -> Path:
    """A real qcow2 made by qemu-img (optionally with some data written into it)."""
    qemu_img("create", "-q", "-f", "qcow2", path, size)
    if payload:
        raw = path.with_suffix(".raw")
        raw.write_bytes(payload + b"\0" * (-len(payload) % 512))
        qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", raw, path)
        qemu_img("resize", "-q", "-f", "qcow2", path, size)
        raw.unlink()
    return path


def digests(data: bytes) -> tuple[str, str]:
    return hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()


@pytest.fixture
async def image_daemon(tmp_path):
    _, config = write_config(tmp_path, components=["images"])
    async with InProcessDaemon(config, components=IMAGE_COMPONENTS) as daemon:
        yield daemon


@pytest.fixture
async def admin(image_daemon):
    client = await image_daemon.admin_client()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def qcow2(tmp_path) -> Path:
    return make_qcow2(tmp_path / "disk.qcow2", "64M", b"monostack test payload\n" * 100)


class Projects:
    """Creates projects with one member user each and logs them in."""

    def __init__(self, daemon: InProcessDaemon, admin: MonostackClient) -> None:
        self.daemon, self.admin, self.clients = daemon, admin, []

    async def member(self, name: str, role: str = "member") -> MonostackClient:
        project = (await self.admin.post("/v3/projects", {"project": {"name": name}}))["project"]
        user = (await self.admin.post("/v3/users", {"user": {
            "name": f"{name}-user", "password": f"{name}-pw",
            "default_project_id": project["id"]}}))["user"]
        rid = (await self.admin.get(f"/v3/roles?name={role}"))["roles"][0]["id"]
        await self.admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{rid}")
        client = MonostackClient(socket_path=self.daemon.config.api.socket)
        await client.login(f"{name}-user", f"{name}-pw", name)
        self.clients.append(client)
        return client


@pytest.fixture
async def projects(image_daemon, admin):
    p = Projects(image_daemon, admin)
    try:
        yield p
    finally:
        for c in p.clients:
            await c.close()


async def create_image(client: MonostackClient, name: str = "img", **extra) -> dict:
    body = {"name": name, "disk_format": "qcow2", "container_format": "bare", **extra}
    return await client.post("/image/v2/images", body)


async def upload(client: MonostackClient, image_id: str, data: bytes | Path, **headers) -> int:
    if isinstance(data, Path):
        data = data.read_bytes()
    status, _ = await client.upload("PUT", f"/image/v2/images/{image_id}/file", data,
                                    headers=headers)
    return status


async def download(client: MonostackClient, image_id: str, **headers) -> bytes:
    return b"".join([c async for c in client.download(f"/image/v2/images/{image_id}/file",
                                                      headers=headers)])
