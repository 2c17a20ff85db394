"""The real `openstack` CLI against the compute API (in-process daemon over TCP; the CLI runs
as an asyncio subprocess so the daemon keeps serving). The image is the real image component's
(uploaded through Glance by the fixture); `image list` shows it as the CLI sees it."""
import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

from tests.compute_support import TEST_IMAGE_NAME
from tests.daemon import ADMIN_PASSWORD

OPENSTACK = shutil.which("openstack") or str(Path(sys.executable).parent / "openstack")


async def openstack(daemon, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=daemon.url + "/identity", OS_USERNAME="admin",
               OS_PASSWORD=ADMIN_PASSWORD, OS_PROJECT_NAME="admin",
               OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
               OS_IDENTITY_API_VERSION="3", OS_REGION_NAME="RegionOne")
    proc = await asyncio.create_subprocess_exec(OPENSTACK, *args, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    if proc.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} failed: {err.decode()[-2000:]}")
    return out.decode()


async def test_openstack_cli_server_lifecycle(compute_daemon):
    d = compute_daemon
    f = json.loads(await openstack(d, "flavor", "create", "--ram", "128", "--vcpus", "1",
                                   "--disk", "1", "cli-flavor", "-f", "json"))
    assert f["name"] == "cli-flavor" and f["id"]
    kp = await openstack(d, "keypair", "create", "cli-key")
    assert "PRIVATE KEY" in kp
    out = await openstack(d, "server", "create", "--flavor", "cli-flavor", "--image",
                          TEST_IMAGE_NAME, "--key-name", "cli-key", "--wait", "cli-vm",
                          "-f", "json")
    # --wait prints the server's progress ("\rProgress: 10") on stdout while it builds, as
    # against Nova: the JSON follows it, and each progress seen is a percentage
    # (as "\rProgress: N", with or without a newline before the JSON)
    shown = [int(p) for p in re.findall(r"\rProgress: (\d+)", out)]
    assert all(0 <= p <= 100 for p in shown), out[:200]
    s = json.loads(re.sub(r"\rProgress: \d+", "", out))
    assert s["status"] == "ACTIVE" and s["key_name"] == "cli-key"
    assert TEST_IMAGE_NAME in s["image"]  # the CLI found the image by name through Glance
    listed = json.loads(await openstack(d, "server", "list", "-f", "json"))
    row = next(r for r in listed if r["Name"] == "cli-vm")
    assert row["Status"] == "ACTIVE" and row["Flavor"] == "cli-flavor"
    log = await openstack(d, "console", "log", "show", "cli-vm")
    assert log.strip() == ""  # test:///default prints nothing; real guests: integration test
    url = json.loads(await openstack(d, "console", "url", "show", "--serial", "cli-vm",
                                     "-f", "json"))
    assert url["url"].startswith("ws://") and "token=" in url["url"]
    await openstack(d, "server", "stop", "cli-vm")
    await _wait_cli_status(d, "cli-vm", "SHUTOFF")
    await openstack(d, "server", "start", "cli-vm")
    await _wait_cli_status(d, "cli-vm", "ACTIVE")
    events = json.loads(await openstack(d, "server", "event", "list", "cli-vm", "-f", "json"))
    assert [e["Action"] for e in events] == ["start", "stop", "create"]
    create = json.loads(await openstack(d, "server", "event", "show", "cli-vm",
                                        events[-1]["Request ID"], "-f", "json"))
    assert "compute__do_build_and_run_instance" in str(create["events"])
    await openstack(d, "server", "delete", "--wait", "cli-vm")
    listed = json.loads(await openstack(d, "server", "list", "-f", "json"))
    assert not [r for r in listed if r["Name"] == "cli-vm"]


async def _wait_cli_status(d, name, status, timeout=30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        s = json.loads(await openstack(d, "server", "show", name, "-f", "json"))
        if s["status"] == status:
            return s
        assert loop.time() < deadline, s
        await asyncio.sleep(0.5)
