"""A real TCG guest through the daemon's API on qemu:///system: BUILD → ACTIVE, the console
log shows the guest's prompt and its name from the config drive, keystrokes through the
serial-console websocket get an answer, stop → SHUTOFF (ACPI), start → ACTIVE, reboot,
pause/unpause, delete → no domain and no disk files left."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import libvirt
import pytest

from appliance.errors import NotFound
from tests.api.compute.fakes import COMPONENTS
from tests.daemon import InProcessDaemon, wait_for, write_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "packaging" / "guest-image" / "build.sh"
C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}
PROMPT = "/ # "
READY = "monostack-guest ready"


def guest_qcow2(root: Path) -> Path:
    """The test guest (packaging/guest-image/build.sh, cached by its input hash)."""
    try:
        from tests.guest_image import ensure_guest_image  # once merged from `guestimage`
        return ensure_guest_image().qcow2
    except ImportError:
        pass
    out = root / "guest-image"
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    res = subprocess.run(["bash", str(BUILD), str(out)], capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0:
        pytest.skip(f"guest image build failed: {res.stderr[-500:]}")
    return Path(res.stdout.strip().splitlines()[-1]) / "guest.qcow2"


def _libvirt_ok() -> bool:
    try:
        libvirt.open("qemu:///system").close()
        return True
    except libvirt.libvirtError:
        return False


@pytest.fixture
async def real_daemon(tmp_path, qemu_dir):
    if not _libvirt_ok():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    image = guest_qcow2(Path("/var/lib/monostack-test"))
    _, config = write_config(tmp_path, components=["images", "compute"], extra={
        "compute": {"libvirt_uri": "qemu:///system", "instances_dir": str(qemu_dir / "inst"),
                    "reserved_host_memory_mb": 0, "graceful_shutdown_timeout": 60},
        "storage": {"images_dir": str(qemu_dir / "images")}})
    made: list[str] = []
    async with InProcessDaemon(config, components=COMPONENTS) as daemon:
        comp = daemon.appliance.ctx.components
        base = qemu_dir / "images" / "guest.qcow2"
        shutil.copyfile(image, base)
        base.chmod(0o644)
        img = comp["image"].add("guest", base, "qcow2")
        client = await daemon.admin_client()
        f = (await client.post(f"{C}/flavors", {"flavor": {
            "name": "guest", "ram": 256, "vcpus": 1, "disk": 1, "id": None}}))["flavor"]
        try:
            yield daemon, client, img.id, f["id"], made
        finally:
            for sid in made:  # never leak a domain, even when the test failed
                try:
                    await comp["compute"].manager.delete(sid)
                except NotFound:
                    pass
            await comp["compute"].manager.wait_idle(120)
            await client.close()


async def console_text(client, sid) -> str:
    return (await client.post(f"{C}/servers/{sid}/action",
                              {"os-getConsoleOutput": {}}))["output"]


async def status(client, sid, *wanted, timeout=120):
    async def check():
        s = (await client.get(f"{C}/servers/{sid}", headers=H))["server"]
        return s if s["status"] in wanted else None
    return await wait_for(check, timeout=timeout, interval=0.2)


async def test_real_guest_lifecycle(real_daemon):
    daemon, client, image_id, flavor_id, made = real_daemon
    kp = (await client.post(f"{C}/os-keypairs", {"keypair": {"name": "gk"}}))["keypair"]
    body = {"server": {"name": "guest-one", "imageRef": image_id, "flavorRef": flavor_id,
                       "key_name": "gk"}}
    sid = (await client.post(f"{C}/servers", body))["server"]["id"]
    made.append(sid)
    s = await status(client, sid, "ACTIVE", "ERROR")
    assert s["status"] == "ACTIVE", s.get("fault")
    manager = daemon.appliance.ctx.components["compute"].manager

    async def booted():
        text = await console_text(client, sid)
        return text if READY in text and PROMPT in text else None
    text = await wait_for(booted, timeout=240, interval=1)
    assert "instance-name: guest-one" in text
    assert "public-keys: 1 installed" in text

    # keystrokes through the serial console websocket, and the guest's answer
    url = (await client.post(f"{C}/servers/{sid}/remote-consoles",
                             {"remote_console": {"protocol": "serial", "type": "serial"}}))
    path = url["remote_console"]["url"].split("://", 1)[1].split("/", 1)[1]
    ws = await client.websocket("/" + path)
    try:
        await ws.send_bytes(b"echo answer-$((6*7))\n")
        seen = b""
        async with asyncio.timeout(60):
            while b"answer-42" not in seen:
                msg = await ws.receive()
                assert msg.data is not None
                seen += msg.data if isinstance(msg.data, bytes) else msg.data.encode()
    finally:
        await ws.close()
    with pytest.raises(Exception):  # single use: the same URL does not open twice
        await client.websocket("/" + path)

    await client.post(f"{C}/servers/{sid}/action", {"os-stop": None})
    s = await status(client, sid, "SHUTOFF", timeout=120)
    assert s["OS-EXT-STS:power_state"] == 4
    await client.post(f"{C}/servers/{sid}/action", {"os-start": None})
    await status(client, sid, "ACTIVE")
    await client.post(f"{C}/servers/{sid}/action", {"reboot": {"type": "HARD"}})
    await status(client, sid, "ACTIVE")
    await client.post(f"{C}/servers/{sid}/action", {"pause": None})
    await status(client, sid, "PAUSED")
    await client.post(f"{C}/servers/{sid}/action", {"unpause": None})
    await status(client, sid, "ACTIVE")

    inst_dir = manager.instances_dir / sid
    assert (inst_dir / "disk").exists() and (inst_dir / "console.log").exists()
    await client.delete(f"{C}/servers/{sid}")

    async def gone():
        try:
            await client.get(f"{C}/servers/{sid}")
        except NotFound:
            return True
    await wait_for(gone, timeout=60)
    conn = libvirt.open("qemu:///system")
    try:
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(sid)
    finally:
        conn.close()
    assert not inst_dir.exists()
    assert manager.scheduler.claim_count() == 0
