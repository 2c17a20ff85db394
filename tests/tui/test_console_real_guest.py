"""The console end to end against a real TCG guest on qemu:///system: the TUI's `c` on the
instance opens its serial console over the daemon's websocket, typed keys reach the guest's
shell, its answer lands in the SerialConsole's screen, and Ctrl+] gives the keyboard back.
Then, on the same guest, a volume is attached from the Volumes screen (`a`, pick the
instance, Attach): the row shows it in use at /dev/vdb and the running domain has the disk;
`x` + confirm hot-unplugs it again.

Bounded: the guest boots in ~20-40 s under TCG; the whole test gives up after ~90 s. The
domain is deleted (and its disks with it) even when the test fails."""
from __future__ import annotations

import shutil
import time
import uuid

import pytest
from textual.widgets import DataTable

from tests.guest_image import PROMPT, READY_MARKER, ensure_guest_image
from tests.tui.harness import ThreadDaemon, log_in, settle, wait_for_table
from tests.tui.test_pilot import _names, _rows, _wait
from tests.tui.test_volume_attach import _attach_with_keys
from tui.dialogs.confirm import ConfirmDialog
from tui.screens.console import ConsoleScreen

pytestmark = pytest.mark.integration

COMPONENTS = ["images",
              "volumes",
              "compute"]
NOVA = {"OpenStack-API-Version": "compute 2.60"}
BOOT_TIMEOUT = 75.0


def _libvirt_ok() -> bool:
    import libvirt  # the test side may look; the TUI never does
    try:
        libvirt.open("qemu:///system").close()
        return True
    except libvirt.libvirtError:
        return False


@pytest.fixture
def guest_cloud(tmp_path, qemu_dir):
    if not _libvirt_ok():
        pytest.skip("qemu:///system is not reachable (start virtlogd and libvirtd)")
    image = ensure_guest_image().qcow2
    daemon = ThreadDaemon(tmp_path, COMPONENTS, extra={
        "compute": {"libvirt_uri": "qemu:///system", "instances_dir": str(qemu_dir / "inst"),
                    "reserved_host_memory_mb": 0},
        "storage": {"images_dir": str(qemu_dir / "images"),
                    "volumes_dir": str(qemu_dir / "volumes")}}).start()
    name = f"tui-guest-{uuid.uuid4().hex[:6]}"
    made: list[str] = []

    async def boot(admin) -> None:
        body = await admin.post("/image/v2/images", {
            "name": "guest", "disk_format": "qcow2", "container_format": "bare"})
        await admin.upload("PUT", f"/image/v2/images/{body['id']}/file", image.read_bytes())
        flavor = (await admin.post("/compute/v2.1/flavors", {"flavor": {
            "name": "guest", "ram": 256, "vcpus": 1, "disk": 1}}, headers=NOVA))["flavor"]
        server = (await admin.post("/compute/v2.1/servers", {"server": {
            "name": name, "imageRef": body["id"], "flavorRef": flavor["id"],
            "networks": "none"}}, headers=NOVA))["server"]
        made.append(server["id"])
        await admin.post(f"/volume/v3/{admin.session.project_id}/volumes",
                         {"volume": {"name": "data-1", "size": 1}})

    try:
        daemon.admin_do(boot)
        yield daemon, name, made[0]
    finally:
        async def clean(admin) -> None:
            manager = daemon.daemon.appliance.ctx.components.compute.manager
            for sid in made:
                try:
                    await manager.delete(sid)
                except Exception:
                    pass
            await manager.wait_idle(60)
        try:
            daemon.admin_do(clean)
        finally:
            daemon.stop()
            shutil.rmtree(qemu_dir / "inst", ignore_errors=True)


def _console_text(daemon: ThreadDaemon, sid: str) -> str:
    async def read(admin) -> str:
        body = await admin.post(f"/compute/v2.1/servers/{sid}/action",
                                {"os-getConsoleOutput": {}}, headers=NOVA)
        return body.get("output", "")
    return daemon.admin_do(read)


async def test_console_types_into_a_real_guest_and_gives_the_keyboard_back(guest_cloud,
                                                                            tmp_path):
    daemon, name, sid = guest_cloud
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:  # the guest's shell is up: its init prints the ready marker, then the prompt
        text = _console_text(daemon, sid)
        if READY_MARKER in text and PROMPT in text:
            break
        assert time.monotonic() < deadline, f"guest did not boot in time:\n{text[-800:]}"
        time.sleep(1)

    app = daemon.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        await pilot.press("2")
        await wait_for_table(pilot, "#servers")
        table = app.screen.query_one("#servers", DataTable)
        table.move_cursor(row=_names(table).index(name))
        instances = app.screen
        await pilot.press("c")
        await _wait(pilot, lambda: isinstance(app.screen, ConsoleScreen)
                    and app.screen.active_console is not None, timeout=15)
        console = app.screen.active_console
        await pilot.press("enter")  # a fresh prompt: the console attached after boot
        await _wait(pilot, lambda: PROMPT.strip() in "\n".join(console.screen_lines),
                    timeout=15)
        for key in "echo tui-$((6*7))":
            await pilot.press({" ": "space", "$": "dollar_sign", "(": "left_parenthesis",
                               ")": "right_parenthesis", "*": "asterisk",
                               "-": "minus"}.get(key, key))
        await pilot.press("enter")
        await _wait(pilot, lambda: any(line.strip() == "tui-42" for line in console.screen_lines),
                    timeout=20)
        await pilot.press("ctrl+right_square_bracket", "q")
        await settle(pilot)
        assert app.screen is instances

        # attach a volume from the Volumes screen: a real hot-plug into the running domain
        await pilot.press("4")
        await settle(pilot)
        vols = app.screen.query_one("#volumes", DataTable)
        await _wait(pilot, lambda: any(r[0] == "data-1" and r[1] == "AVAILABLE"
                                       for r in _rows(vols)), timeout=30)
        await _attach_with_keys(pilot, vols, sid, name)
        await _wait(pilot, lambda: any(r[0] == "data-1" and r[1] == "IN-USE"
                                       and r[4] == f"{name} /dev/vdb" for r in _rows(vols)),
                    timeout=60)
        assert "vdb" in _domain_targets(sid)
        assert not [n for n in app._notifications if n.severity == "error"]
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        await _wait(pilot, lambda: any(r[0] == "data-1" and r[1] == "AVAILABLE" and r[4] == "—"
                                       for r in _rows(vols)), timeout=90)
        assert "vdb" not in _domain_targets(sid)


def _domain_targets(sid: str) -> list[str]:
    import xml.etree.ElementTree as ET

    import libvirt
    conn = libvirt.open("qemu:///system")
    try:
        xml = conn.lookupByUUIDString(sid).XMLDesc(0)
    finally:
        conn.close()
    return [t.get("dev") for t in ET.fromstring(xml).iter("target") if t.get("dev")]
