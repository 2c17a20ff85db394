"""An in-process daemon running only the object component, and a small Swift HTTP helper.

The helper speaks raw aiohttp (so tests see exact status codes and headers); the real
`swift` and `openstack` CLIs run as asyncio subprocesses so the daemon keeps serving on the
test's own event loop while they talk to it.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from appliance.client import MonostackClient
from tests.daemon import ADMIN_PASSWORD, InProcessDaemon, write_config

SPEC = "objects"
BIN = Path(sys.executable).parent
SWIFT = shutil.which("swift", path=str(BIN)) or "swift"
OPENSTACK = shutil.which("openstack", path=str(BIN)) or "openstack"


@dataclass
class Swift:
    """Raw HTTP to one account with one token."""

    http: aiohttp.ClientSession
    base: str  # http://host:port
    token: str | None
    account: str

    @property
    def url(self) -> str:
        return f"{self.base}/swift/v1/{self.account}"

    async def request(self, method: str, path: str = "", *, data: Any = None,
                      headers: dict[str, str] | None = None, raw: bool = False,
                      token: str | None | bool = True) -> tuple[int, Any, bytes]:
        """`path` is appended to the account URL as given (already %-encoded when raw)."""
        hdrs = dict(headers or {})
        tok = self.token if token is True else token
        if tok:
            hdrs["X-Auth-Token"] = tok
        url = URL(self.url + path, encoded=True) if raw else self.url + path
        skip = () if "Content-Type" in hdrs else ("Content-Type",)  # as swiftclient: none sent
        async with self.http.request(method, url, data=data, headers=hdrs, skip_auto_headers=skip) as r:
            return r.status, r.headers, await r.read()

    def as_account(self, account: str) -> "Swift":
        return Swift(self.http, self.base, self.token, account)


async def login(daemon, user: str, password: str, project: str) -> MonostackClient:
    client = MonostackClient(socket_path=daemon.config.api.socket)
    await client.login(user, password, project)
    return client


async def make_user(admin: MonostackClient, project: str, user: str, password: str,
                    role: str = "member") -> str:
    proj = (await admin.post("/v3/projects", {"project": {"name": project}}))["project"]
    u = (await admin.post("/v3/users", {"user": {"name": user, "password": password,
                                                  "default_project_id": proj["id"]}}))["user"]
    r = (await admin.get(f"/v3/roles?name={role}"))["roles"][0]
    await admin.put(f"/v3/projects/{proj['id']}/users/{u['id']}/roles/{r['id']}")
    return proj["id"]


@pytest.fixture
async def swift_daemon(tmp_path):
    _, config = write_config(tmp_path / "d", components=["objects"],
                             extra={"storage": {"object_expirer_interval": 0.2,
                                                "object_auditor_interval": 3600.0}})
    async with InProcessDaemon(config, components=[SPEC]) as daemon:
        yield daemon


@pytest.fixture
async def sw(swift_daemon):
    admin = await swift_daemon.admin_client()
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        yield Swift(http, swift_daemon.url, admin.token, f"AUTH_{admin.session.project_id}")
    await admin.close()


async def run_cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 300,
                  cwd: Path | None = None) -> str:
    """Run a CLI without blocking the loop the in-process daemon serves on."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(*argv, env=full_env, cwd=cwd,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:3])}… failed ({proc.returncode}): {err.decode()[-3000:]}")
    return out.decode()


def swift_args(daemon, user: str = "admin", password: str = ADMIN_PASSWORD,
               project: str = "admin") -> list[str]:
    return [SWIFT, "--os-auth-url", daemon.url + "/identity/v3", "--auth-version", "3",
            "--os-username", user, "--os-password", password, "--os-project-name", project,
            "--os-user-domain-name", "Default", "--os-project-domain-name", "Default"]


def openstack_env(daemon, user: str = "admin", password: str = ADMIN_PASSWORD,
                  project: str = "admin") -> dict[str, str]:
    return dict(OS_AUTH_URL=daemon.url + "/identity", OS_USERNAME=user, OS_PASSWORD=password,
                OS_PROJECT_NAME=project, OS_USER_DOMAIN_NAME="Default",
                OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3",
                OS_REGION_NAME="RegionOne")
