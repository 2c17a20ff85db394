"""Attach a volume to an instance from the Volumes screen (issue 7's "attach a volume" pilot
test), over a real daemon with images, volumes and compute on libvirt test:///default.

test:///default has no virDomainAttachDeviceFlags, so the daemon's libvirt driver refuses a
disk hot-plug there (503, "disk hot-plug is not supported by the test:///default driver") and
rolls the volume back to available. This test proves through the TUI that the `a` key →
instance picker → Attach sends the Nova request
(POST /compute/v2.1/servers/{id}/os-volume_attachments {"volumeAttachment": {"volumeId"}})
and that the daemon's refusal appears as an error notification with its OpenStack text.
The successful attach and detach through the same keys run against a real TCG guest in
tests/tui/test_console_real_guest.py.
"""
from __future__ import annotations

import asyncio
import importlib.util

import pytest
from textual.widgets import DataTable, Select

from tests.compute_support import COMPONENTS, seed_test_image
from tests.tui.harness import ThreadDaemon, log_in, settle
from tests.tui.test_pilot import _names, _rows, _wait
from tui.dialogs.form import FormDialog

pytestmark = pytest.mark.skipif(importlib.util.find_spec("appliance.compute") is None,
                                reason="the compute component is not merged yet")

NOVA = {"OpenStack-API-Version": "compute 2.60"}


async def _poll(fetch, ok, timeout: float = 30.0):
    for _ in range(int(timeout / 0.05)):
        value = await fetch()
        if ok(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached: {value}")


@pytest.fixture(scope="module")
def attach_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("attach-daemon")
    daemon = ThreadDaemon(base, COMPONENTS).start()
    try:
        async def seed(admin):
            image = await seed_test_image(admin, base)
            flavor = (await admin.get("/compute/v2.1/flavors"))["flavors"][0]["id"]
            server = (await admin.post("/compute/v2.1/servers", {"server": {
                "name": "web-1", "flavorRef": flavor, "imageRef": image,
                "networks": "none"}}, headers=NOVA))["server"]
            vols = f"/volume/v3/{admin.session.project_id}/volumes"
            vol = (await admin.post(vols, {"volume": {"name": "data-1", "size": 1}}))["volume"]
            await _poll(lambda: admin.get(f"/compute/v2.1/servers/{server['id']}",
                                          headers=NOVA),
                        lambda b: b["server"]["status"] in ("ACTIVE", "ERROR"))
            await _poll(lambda: admin.get(f"{vols}/{vol['id']}"),
                        lambda b: b["volume"]["status"] in ("available", "error"))
            return server["id"], vol["id"]
        daemon.ids = daemon.admin_do(seed)
        yield daemon
    finally:
        daemon.stop()


async def _attach_with_keys(pilot, table: DataTable, server_id: str,
                            server_name: str = "web-1") -> None:
    """Select data-1, press `a`, pick the instance in the dialog's list, press Attach."""
    table.move_cursor(row=_names(table).index("data-1"))
    await pilot.press("a")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, FormDialog)
    picker = form.query_one("#field-server", Select)
    assert [(str(label), value) for label, value in picker._options
            if value is not Select.BLANK] == [(server_name, server_id)]
    picker.value = server_id
    await pilot.press("ctrl+s")
    await settle(pilot)


async def test_attach_a_volume_to_an_instance(attach_daemon, tmp_path):
    server_id, volume_id = attach_daemon.ids
    app = attach_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        await log_in(pilot)
        posts: list[tuple[str, object]] = []
        real_post = app.cloud.client.post

        async def recording_post(path, body=None, **kw):
            posts.append((path, body))
            return await real_post(path, body, **kw)
        app.cloud.client.post = recording_post

        await pilot.press("4")
        await settle(pilot)
        table = app.screen.query_one("#volumes", DataTable)
        await _wait(pilot, lambda: "data-1" in _names(table))

        # 1. test:///default cannot hot-plug: the daemon's answer is the notification.
        await _attach_with_keys(pilot, table, server_id)
        assert (f"/compute/v2.1/servers/{server_id}/os-volume_attachments",
                {"volumeAttachment": {"volumeId": volume_id, "device": None}}) in posts
        await _wait(pilot, lambda: any(n.severity == "error" for n in app._notifications))
        note = next(n for n in app._notifications if n.severity == "error")
        assert "disk hot-plug is not supported by the test:///default driver" in note.message
        assert "Traceback" not in note.message
        await _wait(pilot, lambda: any(r[0] == "data-1" and r[1] == "AVAILABLE" and r[4] == "—"
                                       for r in _rows(table)), timeout=10)

