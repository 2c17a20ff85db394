"""Shared pieces of the reliability suite: the CI/long switch, which components are installed,
users in other projects, a tiny bootable image, the route table, and the directories a
daemon owns on disk.

Every test here runs against the real daemon (in-process or `monostack serve`), with every
component that is installed on this branch; a component not built yet is skipped with a reason
(`require(...)`), so the suite grows as components land.
"""
from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from appliance.client import MonostackClient
from appliance.config import Config
from appliance.service import COMPONENTS

#: MONOSTACK_LONG=1 runs the long forms (more kills, longer load); CI runs the bounded ones.
LONG = os.environ.get("MONOSTACK_LONG", "") not in ("", "0")

NOVA = {"OpenStack-API-Version": "compute 2.60"}
C = "/compute/v2.1"
N = "/network/v2.0"

#: config name → runtime name (the ctx.components field)
_NAMES = {"images": "image", "volumes": "volume", "network": "network", "compute": "compute",
          "objects": "object"}
assert tuple(_NAMES) == COMPONENTS


def installed(name: str) -> bool:
    """Is `name` (runtime name: image, volume, network, compute, object) a component? Every
    component is built into the daemon; a name outside them is a typo."""
    return name in _NAMES.values()


def require(*names: str) -> None:
    """Skip the calling test, with the reason, when a component it needs is not on this branch."""
    missing = [n for n in names if not installed(n)]
    if missing:
        pytest.skip(f"component(s) not installed on this branch: {', '.join(missing)}")


def installed_components() -> list[str]:
    """Config names of every component (for write_config(components=...))."""
    return list(COMPONENTS)


@functools.cache
def tiny_qcow2() -> bytes:
    """A valid, empty 16 MiB qcow2 (≈200 KB): passes image inspection and boots on test:///."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
        return path.read_bytes()


async def new_project_user(admin: MonostackClient, socket: Path, role: str = "member",
                           prefix: str = "u") -> tuple[MonostackClient, dict, dict]:
    """A fresh project with one user holding `role` there, logged in: (client, user, project)."""
    tag = uuid.uuid4().hex[:8]
    project = (await admin.post("/v3/projects", {"project": {"name": f"{prefix}-p-{tag}"}}))["project"]
    password = f"pw-{tag}-Secret"
    user = (await admin.post("/v3/users", {"user": {"name": f"{prefix}-{tag}",
                                                    "password": password}}))["user"]
    role_rec = (await admin.get(f"/v3/roles?name={role}"))["roles"][0]
    await admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role_rec['id']}")
    client = MonostackClient(socket_path=socket)
    await client.login(user["name"], password, project["name"])
    user["password"] = password
    return client, user, project


async def upload_image(client: MonostackClient, name: str = "tiny", data: bytes | None = None,
                       **fields: object) -> dict:
    img = await client.post("/image/v2/images", {"name": name, "disk_format": "qcow2",
                                                 "container_format": "bare", **fields})
    await client.upload("PUT", f"/image/v2/images/{img['id']}/file",
                        tiny_qcow2() if data is None else data)
    return await client.get(f"/image/v2/images/{img['id']}")


def routes_of(app) -> Iterator[tuple[str, str, object]]:
    """(method, path template, handler) for every route of the running app, once each."""
    seen = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*") or (route.method, path) in seen:
            continue
        seen.add((route.method, path))
        yield route.method, path, route.handler


def data_dirs(config: Config) -> list[Path]:
    """Every root under which a daemon may create files: anything else is a traversal."""
    dirs = [config.state_dir, config.storage.images_dir, config.storage.volumes_dir,
            config.compute.instances_dir, *config.storage.object_devices,
            Path(config.api.socket).parent]
    return [Path(d) for d in dirs]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


async def raw(method: str, url: str, *, token: str | None = None, data: bytes | None = None,
              json_body: object = None, headers: dict[str, str] | None = None,
              timeout: float = 30.0) -> tuple[int, str]:
    """One HTTP exchange outside the client (which would fix up what we want to break)."""
    hdrs = dict(headers or {})
    if token:
        hdrs["X-Auth-Token"] = token
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.request(method, url, data=data, json=json_body, headers=hdrs) as r:
            return r.status, await r.text()
