"""Real TCG guests through the daemon's API on qemu:///system, with the real image, volume and
compute components: the guest test image is uploaded through Glance, and one module-scoped
daemon and guest go through the whole lifecycle, step by step (tests run in file order):

boot → ACTIVE, the console shows the prompt and the instance name from the config drive, and
keystrokes through the serial-console websocket get an answer; soft and hard reboot (a second
boot on the console); pause/unpause; suspend/resume; stop/start; resize + confirmResize (the
domain has the new vCPUs/memory); rescue/unrescue; createImage → a new active image that
boots a second server; a volume attached to the first guest (/dev/vdb), written, detached,
attached to the second guest and read back; boot from a volume built from the image;
delete → no domain, no disk files, no claims, volumes available again.

Bounded: every step has its own timeout and the module stops early past MODULE_BUDGET.
Guests: at most two run at once (2 shared cores).
"""
from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from appliance.errors import BadRequest, NotFound
from tests.compute_support import CONFIG_COMPONENTS, upload_image
from tests.daemon import InProcessDaemon, wait_for, write_config
from tests.guest_image import (
    BOOTING_MARKER,
    PROMPT,
    READY_MARKER,
    GuestImageBuildError,
    ensure_guest_image,
    make_traversable_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}
URI = "qemu:///system"
QEMU_ROOT = Path("/var/lib/monostack-test")
#: seconds the whole module may take before the remaining steps are skipped
MODULE_BUDGET = 420.0
BOOT_TIMEOUT = 120.0


def _libvirt_ok() -> bool:
    try:
        libvirt.open(URI).close()
        return True
    except libvirt.libvirtError:
        return False


class Env:
    """What the steps share: the daemon, an admin client, ids made so far."""

    def __init__(self, daemon: InProcessDaemon, client, base: Path) -> None:
        self.daemon, self.client, self.base = daemon, client, base
        self.started = time.monotonic()
        self.suffix = uuid.uuid4().hex[:6]
        self.image_id = ""
        self.small = self.big = ""
        self.servers: dict[str, str] = {}  # role → server id
        self.volumes: list[str] = []
        self.images: list[str] = []

    @property
    def manager(self):
        return self.daemon.appliance.ctx.components.compute.manager

    def vpath(self, rest: str = "") -> str:
        return f"/volume/v3/{self.client.session.project_id}{rest}"

    def sid(self, role: str) -> str:
        if role not in self.servers:
            pytest.skip(f"no {role} server (an earlier step failed)")
        return self.servers[role]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env():
    if not _libvirt_ok():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    try:
        guest = ensure_guest_image()
    except GuestImageBuildError as exc:
        pytest.skip(f"guest image build failed: {exc}")
    base = make_traversable_dir(QEMU_ROOT / ("it-" + uuid.uuid4().hex[:12]))
    state = base / "daemon"
    state.mkdir()
    _, config = write_config(state, components=CONFIG_COMPONENTS, extra={
        "compute": {"libvirt_uri": URI, "instances_dir": str(base / "instances"),
                    "reserved_host_memory_mb": 0, "graceful_shutdown_timeout": 30},
        "storage": {"images_dir": str(base / "images"), "volumes_dir": str(base / "volumes")}})
    e: Env | None = None
    try:
        async with InProcessDaemon(config) as daemon:
            client = await daemon.admin_client()
            e = Env(daemon, client, base)
            try:
                e.image_id = await upload_image(client, guest.qcow2, name="guest-" + e.suffix)
                e.images.append(e.image_id)
                e.small = (await client.post(f"{C}/flavors", {"flavor": {
                    "name": "it-small-" + e.suffix, "ram": 192, "vcpus": 1, "disk": 1,
                    "id": None}}))["flavor"]["id"]
                e.big = (await client.post(f"{C}/flavors", {"flavor": {
                    "name": "it-big-" + e.suffix, "ram": 256, "vcpus": 2, "disk": 2,
                    "id": None}}))["flavor"]["id"]
                yield e
            finally:
                await _clean(e)
                await client.close()
    finally:
        if e is not None:
            _destroy_leftover_domains(list(e.servers.values()))
        shutil.rmtree(base, ignore_errors=True)


async def _clean(e: Env) -> None:
    """Delete what the steps left (never leak a guest), even after a failure."""
    manager = e.manager
    for sid in list(e.servers.values()):
        try:
            await manager.delete(sid)
        except NotFound:
            pass
    with _suppress():
        await manager.wait_idle(120)
    for vid in e.volumes:
        with _suppress():
            await e.client.delete(e.vpath(f"/volumes/{vid}"))


def _suppress():
    import contextlib
    return contextlib.suppress(Exception)


def _destroy_leftover_domains(uuids: list[str]) -> None:
    conn = libvirt.open(URI)
    try:
        for u in uuids:
            try:
                dom = conn.lookupByUUIDString(u)
            except libvirt.libvirtError:
                continue
            with _suppress():
                dom.destroy()
            with _suppress():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def budget(request):
    if "env" not in request.fixturenames:
        return
    e: Env = request.getfixturevalue("env")
    if time.monotonic() - e.started > MODULE_BUDGET:
        pytest.skip(f"module time budget ({MODULE_BUDGET:.0f} s) used up")


# -- helpers ------------------------------------------------------------------------------------

async def server(e: Env, sid: str) -> dict:
    return (await e.client.get(f"{C}/servers/{sid}", headers=H))["server"]


async def status(e: Env, sid: str, *wanted: str, timeout: float = BOOT_TIMEOUT) -> dict:
    last: dict = {}

    async def check():
        nonlocal last
        last = await server(e, sid)
        if last["status"] == "ERROR" and "ERROR" not in wanted:
            raise AssertionError(f"server went to ERROR: {last.get('fault')}")
        return last if last["status"] in wanted and not last["OS-EXT-STS:task_state"] else None
    try:
        return await wait_for(check, timeout=timeout, interval=0.25)
    except TimeoutError:
        inst = e.manager.instances.get(sid)  # the fault is shown by the API only on ERROR
        tail = (await console(e, sid))[-1200:]
        raise AssertionError(f"{sid} not {wanted} after {timeout} s: {last.get('status')} "
                             f"{last.get('OS-EXT-STS:task_state')} "
                             f"{inst.fault if inst else None}\nconsole:\n{tail}") from None


async def act(e: Env, sid: str, body: dict):
    return await e.client.post(f"{C}/servers/{sid}/action", body, headers=H)


async def console(e: Env, sid: str) -> str:
    return (await act(e, sid, {"os-getConsoleOutput": {}}))["output"]


async def boots_seen(e: Env, sid: str) -> int:
    return (await console(e, sid)).count(BOOTING_MARKER)


async def wait_booted(e: Env, sid: str, boots: int = 1, timeout: float = BOOT_TIMEOUT) -> str:
    """The console shows the `boots`-th boot reaching the prompt; the text."""
    async def check():
        text = await console(e, sid)
        if text.count(BOOTING_MARKER) < boots:
            return None
        last = text[[m.start() for m in re.finditer(BOOTING_MARKER, text)][boots - 1]:]
        return text if READY_MARKER in last and PROMPT in last else None
    try:
        return await wait_for(check, timeout=timeout, interval=0.5)
    except TimeoutError:
        tail = (await console(e, sid))[-1500:]
        raise AssertionError(f"boot #{boots} of {sid} never reached the prompt:\n{tail}") from None


async def create(e: Env, role: str, name: str, **extra) -> str:
    body = {"server": {"name": name, "flavorRef": extra.pop("flavorRef", e.small), **extra}}
    sid = (await e.client.post(f"{C}/servers", body, headers=H))["server"]["id"]
    e.servers[role] = sid
    return sid


async def shell(e: Env, sid: str, command: str, expect: str, timeout: float = 60.0) -> str:
    """Type `command` on the serial console (through the remote-console websocket) and read
    until `expect` shows up; what was read. The typed line is echoed, so `expect` should be
    something only the command's output contains (e.g. an arithmetic result)."""
    answer = await e.client.post(f"{C}/servers/{sid}/remote-consoles",
                                 {"remote_console": {"protocol": "serial", "type": "serial"}})
    path = answer["remote_console"]["url"].split("://", 1)[1].split("/", 1)[1]
    ws = await e.client.websocket("/" + path)
    seen = b""
    try:
        await ws.send_bytes(b"\n" + command.encode() + b"\n")
        async with asyncio.timeout(timeout):
            while expect.encode() not in seen:
                msg = await ws.receive()
                assert msg.data is not None, f"console closed; read so far: {seen[-500:]!r}"
                seen += msg.data if isinstance(msg.data, bytes) else msg.data.encode()
    except TimeoutError:
        raise AssertionError(f"no {expect!r} from {command!r}; read: {seen[-800:]!r}") from None
    finally:
        await ws.close()
    return seen.decode(errors="replace")


def domain_of(sid: str):
    conn = libvirt.open(URI)
    try:
        return conn.lookupByUUIDString(sid).XMLDesc(0)
    finally:
        conn.close()


async def volume(e: Env, vid: str) -> dict:
    return (await e.client.get(e.vpath(f"/volumes/{vid}")))["volume"]


async def volume_status(e: Env, vid: str, *wanted: str, timeout: float = 60.0) -> dict:
    async def check():
        v = await volume(e, vid)
        return v if v["status"] in wanted else None
    return await wait_for(check, timeout=timeout, interval=0.2)


# -- the steps ----------------------------------------------------------------------------------

async def test_boot_shows_prompt_and_config_drive_name(env: Env):
    e = env
    await e.client.post(f"{C}/os-keypairs", {"keypair": {"name": "k-" + e.suffix}})
    name = "guest-one-" + e.suffix
    t0 = time.monotonic()
    sid = await create(e, "one", name, imageRef=e.image_id, key_name="k-" + e.suffix,
                       config_drive=True)
    s = await status(e, sid, "ACTIVE")
    assert s["OS-EXT-STS:power_state"] == 1
    text = await wait_booted(e, sid)
    print(f"boot to prompt: {time.monotonic() - t0:.1f} s")
    assert f"instance-name: {name}" in text
    assert "public-keys: 1 installed" in text
    # keystrokes through the serial console websocket, and the guest's answer
    await shell(e, sid, "echo answer-$((6*7))", "answer-42")


async def test_soft_and_hard_reboot_boot_again(env: Env):
    e, sid = env, env.sid("one")
    before = await boots_seen(e, sid)
    await act(e, sid, {"reboot": {"type": "SOFT"}})
    await status(e, sid, "ACTIVE")
    await wait_booted(e, sid, before + 1)
    await act(e, sid, {"reboot": {"type": "HARD"}})
    await status(e, sid, "ACTIVE")
    await wait_booted(e, sid, before + 2)


async def test_pause_unpause_and_suspend_resume(env: Env):
    e, sid = env, env.sid("one")
    await act(e, sid, {"pause": None})
    assert (await status(e, sid, "PAUSED"))["OS-EXT-STS:power_state"] == 3
    await act(e, sid, {"unpause": None})
    await status(e, sid, "ACTIVE")
    await act(e, sid, {"suspend": None})
    s = await status(e, sid, "SUSPENDED")
    assert s["OS-EXT-STS:power_state"] == 7
    boots = await boots_seen(e, sid)
    await act(e, sid, {"resume": None})
    await status(e, sid, "ACTIVE")
    # the same boot goes on: memory came back, the shell still answers
    await shell(e, sid, "echo resumed-$((40+2))", "resumed-42")
    assert await boots_seen(e, sid) == boots


async def test_stop_start(env: Env):
    e, sid = env, env.sid("one")
    boots = await boots_seen(e, sid)
    await act(e, sid, {"os-stop": None})
    s = await status(e, sid, "SHUTOFF")
    assert s["OS-EXT-STS:power_state"] == 4
    await act(e, sid, {"os-start": None})
    await status(e, sid, "ACTIVE")
    await wait_booted(e, sid, boots + 1)


async def test_resize_confirm_gives_domain_new_vcpus_and_memory(env: Env):
    e, sid = env, env.sid("one")
    boots = await boots_seen(e, sid)
    await act(e, sid, {"resize": {"flavorRef": e.big}})
    await status(e, sid, "VERIFY_RESIZE")
    await act(e, sid, {"confirmResize": None})
    s = await status(e, sid, "ACTIVE")
    assert s["flavor"]["vcpus"] == 2 and s["flavor"]["ram"] == 256
    xml = domain_of(sid)
    assert re.search(r"<vcpu[^>]*>2</vcpu>", xml), xml
    assert re.search(r"<memory unit='KiB'>262144</memory>", xml), xml
    text = await wait_booted(e, sid, boots + 1)
    assert "instance-name: guest-one-" in text


async def test_rescue_unrescue(env: Env):
    e, sid = env, env.sid("one")
    boots = await boots_seen(e, sid)
    await act(e, sid, {"rescue": None})
    await status(e, sid, "RESCUE")
    await wait_booted(e, sid, boots + 1)  # the rescue disk (the image) boots
    assert "disk.rescue" in domain_of(sid)
    await act(e, sid, {"unrescue": None})
    await status(e, sid, "ACTIVE")
    await wait_booted(e, sid, boots + 2)
    assert "disk.rescue" not in domain_of(sid)
    assert not (e.manager.instances_dir / sid / "disk.rescue").exists()


async def test_snapshot_is_an_image_that_boots_a_second_server(env: Env):
    e, sid = env, env.sid("one")
    answer = await act(e, sid, {"createImage": {"name": "snap-" + e.suffix}})
    image_id = answer["image_id"]
    e.images.append(image_id)
    img = await e.client.get(f"/image/v2/images/{image_id}")
    assert img["status"] == "active" and img["disk_format"] == "qcow2"
    assert img["instance_uuid"] == sid and img["image_type"] == "snapshot"
    await status(e, sid, "ACTIVE")
    name = "guest-two-" + e.suffix
    with pytest.raises(BadRequest, match="disk is too small"):  # 2 GiB disk, 1 GiB flavor
        await create(e, "two", name, imageRef=image_id)
    two = await create(e, "two", name, imageRef=image_id, config_drive=True, flavorRef=e.big)
    await status(e, two, "ACTIVE")
    text = await wait_booted(e, two)
    assert f"instance-name: {name}" in text


# A hot-plugged disk shows up in the guest only after PCIe hot-plug settles (Linux's pciehp
# waits out its 5 s attention-button window), well after libvirt reports the attach: wait
# for the node inside the guest rather than racing it.
WAIT_VDB = "for i in $(seq 1 60); do [ -b /dev/vdb ] && break; sleep 0.5; done; "


async def test_volume_moves_between_guests_with_its_data(env: Env):
    e = env
    one, two = e.sid("one"), e.sid("two")
    vol = (await e.client.post(e.vpath("/volumes"), {"volume": {
        "name": "it-vol-" + e.suffix, "size": 1}}))["volume"]
    e.volumes.append(vol["id"])
    await volume_status(e, vol["id"], "available")
    marker = "marker-" + uuid.uuid4().hex[:8]

    att = (await e.client.post(f"{C}/servers/{one}/os-volume_attachments",
                               {"volumeAttachment": {"volumeId": vol["id"]}}))["volumeAttachment"]
    assert att["device"] == "/dev/vdb"
    v = await volume_status(e, vol["id"], "in-use")
    assert v["attachments"][0]["server_id"] == one
    await shell(e, one, WAIT_VDB + "ls /dev/vdb && echo seen-$((3+4))", "seen-7")
    await shell(e, one, f"echo {marker} > /dev/vdb; sync; echo wrote-$((2+3))", "wrote-5")

    t0 = time.monotonic()
    await e.client.delete(f"{C}/servers/{one}/os-volume_attachments/{vol['id']}")
    await volume_status(e, vol["id"], "available")
    print(f"detach (ACPI hot-unplug) took {time.monotonic() - t0:.1f} s")
    assert "vdb" not in re.findall(r"<target dev='(\w+)'", domain_of(one))

    await e.client.post(f"{C}/servers/{two}/os-volume_attachments",
                        {"volumeAttachment": {"volumeId": vol["id"]}})
    await volume_status(e, vol["id"], "in-use")
    seen = await shell(e, two, WAIT_VDB + "head -c 20 /dev/vdb; echo; echo read-$((5+5))",
                       "read-10")
    assert marker in seen
    await e.client.delete(f"{C}/servers/{two}/os-volume_attachments/{vol['id']}")
    await volume_status(e, vol["id"], "available")


async def test_delete_leaves_no_domain_disk_claim_or_attachment(env: Env):
    e = env
    roles = [r for r in ("one", "two") if r in e.servers]
    if not roles:
        pytest.skip("no servers")
    vol = None
    if e.volumes:  # a volume attached at delete time goes back to available
        vol = e.volumes[0]
        if (await volume(e, vol))["status"] == "available":  # else an earlier test left it on
            await e.client.post(f"{C}/servers/{e.servers[roles[0]]}/os-volume_attachments",
                                {"volumeAttachment": {"volumeId": vol}})
        await volume_status(e, vol, "in-use")
    for role in roles:
        await e.client.delete(f"{C}/servers/{e.servers[role]}")
    for role in roles:
        sid = e.servers.pop(role)

        async def gone(sid=sid):
            try:
                await server(e, sid)
            except NotFound:
                return True
        await wait_for(gone, timeout=90)
        with pytest.raises(libvirt.libvirtError):
            domain_of(sid)
        assert not (e.manager.instances_dir / sid).exists()
    assert e.manager.scheduler.claim_count() == 0
    if vol is not None:
        v = await volume_status(e, vol, "available")
        assert v["attachments"] == []


async def test_boot_from_new_volume_reaches_the_prompt(env: Env):
    """Source image → destination volume: the root disk is a Cinder volume (one guest only:
    the earlier ones are gone)."""
    e = env
    name = "guest-bfv-" + e.suffix
    sid = await create(e, "bfv", name, config_drive=True, block_device_mapping_v2=[{
        "uuid": e.image_id, "source_type": "image", "destination_type": "volume",
        "boot_index": 0, "volume_size": 1, "delete_on_termination": True}])
    s = await status(e, sid, "ACTIVE")
    [vid] = [v["id"] for v in s["os-extended-volumes:volumes_attached"]]
    assert (await volume(e, vid))["status"] == "in-use"
    import xml.etree.ElementTree as ET
    roots = [d.find("source").get("file") for d in ET.fromstring(domain_of(sid)).iter("disk")
             if d.find("target").get("dev") == "vda"]
    assert len(roots) == 1 and vid in roots[0], roots
    text = await wait_booted(e, sid)
    assert f"instance-name: {name}" in text
    await e.client.delete(f"{C}/servers/{sid}")

    async def gone():
        try:
            await server(e, sid)
        except NotFound:
            return True
    await wait_for(gone, timeout=90)
    e.servers.pop("bfv")
    with pytest.raises(libvirt.libvirtError):
        domain_of(sid)
    assert not (e.manager.instances_dir / sid).exists()

    async def volume_gone():
        try:
            await volume(e, vid)
        except NotFound:
            return True
    await wait_for(volume_gone, timeout=60)  # delete_on_termination
