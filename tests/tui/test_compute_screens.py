"""Instances over a daemon with compute (libvirt test:///default) and the image service:
create an instance through the wizard, see it go ACTIVE by itself (event stream), open its
detail, delete it with confirmation. Skipped until the compute component is on this branch."""
from __future__ import annotations

import importlib.util
import subprocess

import pytest
from textual.widgets import DataTable

from tests.tui.harness import ThreadDaemon, log_in, settle
from tests.tui.test_pilot import _names, _rows, _wait
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import FormDialog
from tui.screens.instance_detail import InstanceDetailScreen

pytestmark = pytest.mark.skipif(importlib.util.find_spec("appliance.compute") is None,
                                reason="the compute component is not merged yet")

COMPONENTS = ["images",
              "compute"]


@pytest.fixture(scope="module")
def compute_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("compute-daemon")
    daemon = ThreadDaemon(base, COMPONENTS).start()
    disk = base / "tinyguest.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)

    async def seed(admin):
        image = await admin.post("/image/v2/images", {
            "name": "tinyguest", "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public"})
        await admin.upload("PUT", f"/image/v2/images/{image['id']}/file", disk.read_bytes())
    daemon.admin_do(seed)
    try:
        yield daemon
    finally:
        daemon.stop()


async def test_wizard_creates_an_instance_that_goes_active_then_delete(compute_daemon, tmp_path):
    app = compute_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        await log_in(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert app.screen.query_one("#switcher").current == "body"
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormDialog)
        form.query_one("#field-name").value = "web-1"
        assert form.values()["flavor"] and form.values()["source"].startswith("image:")
        await pilot.press("ctrl+s")
        await settle(pilot)
        table = app.screen.query_one("#servers", DataTable)
        # No manual refresh: the event stream brings BUILD → ACTIVE.
        await _wait(pilot, lambda: any(r[0] == "web-1" and r[1] == "ACTIVE"
                                       for r in _rows(table)), timeout=60)

        table.move_cursor(row=_names(table).index("web-1"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, InstanceDetailScreen)
        await _wait(pilot, lambda: app.screen.server is not None)
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        await _wait(pilot, lambda: "web-1" not in _names(table), timeout=60)


async def test_an_action_the_daemon_refuses_is_a_notification(compute_daemon, tmp_path):
    async def boot(admin):
        flavors = (await admin.get("/compute/v2.1/flavors"))["flavors"]
        images = (await admin.get("/image/v2/images"))["images"]
        await admin.post("/compute/v2.1/servers", {"server": {
            "name": "db-1", "flavorRef": flavors[0]["id"], "imageRef": images[0]["id"],
            "networks": "none"}}, headers={"OpenStack-API-Version": "compute 2.60"})
    compute_daemon.admin_do(boot)
    app = compute_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        await log_in(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#servers", DataTable)
        await _wait(pilot, lambda: any(r[0] == "db-1" and r[1] == "ACTIVE"
                                       for r in _rows(table)), timeout=60)
        table.move_cursor(row=_names(table).index("db-1"))
        await pilot.press("s")  # start an ACTIVE server: Nova answers 409
        await _wait(pilot, lambda: any(n.severity == "error" for n in app._notifications))
        note = next(n for n in app._notifications if n.severity == "error")
        assert note.title == "Conflict" and "Traceback" not in note.message


async def test_new_instance_boot_sources_follow_images_made_while_the_form_is_open(
        compute_daemon, tmp_path):
    app = compute_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        await log_in(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormDialog)
        source = form.query_one("#field-source")
        chosen = source.value
        assert all("late-image" not in str(label) for label, _ in source._options)

        async def upload(admin):
            image = await admin.post("/image/v2/images", {
                "name": "late-image", "disk_format": "raw", "container_format": "bare"})
            await admin.upload("PUT", f"/image/v2/images/{image['id']}/file", b"\0" * 4096)
        compute_daemon.admin_do(upload)
        await _wait(pilot, lambda: any("late-image" in str(label)
                                       for label, _ in source._options), timeout=20)
        assert source.value == chosen  # the operator's choice survives the refresh
        await pilot.press("escape")


async def test_a_build_that_fails_says_why(compute_daemon, tmp_path):
    from tests.tui.test_pilot import _notes

    async def seed(admin):
        flavor = (await admin.post("/compute/v2.1/flavors", {"flavor": {
            "name": "huge", "ram": 50000, "vcpus": 1, "disk": 1}}))["flavor"]
        images = (await admin.get("/image/v2/images"))["images"]
        return flavor["id"], next(i["id"] for i in images if i["name"] == "tinyguest")
    flavor_id, image_id = compute_daemon.admin_do(seed)
    app = compute_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        await log_in(pilot)
        await pilot.press("2")
        await settle(pilot)

        async def boot(admin):
            await admin.post("/compute/v2.1/servers", {"server": {
                "name": "too-big", "flavorRef": flavor_id, "imageRef": image_id,
                "networks": "none"}})
        compute_daemon.admin_do(boot)
        await _wait(pilot, lambda: any("Build failed" in n and "too-big" in n
                                       for n in _notes(app)), timeout=30)
        note = next(n for n in _notes(app) if "too-big" in n)
        assert "NoValidHost" in note or "No valid host" in note, note

        async def clean(admin):
            for s in (await admin.get("/compute/v2.1/servers"))["servers"]:
                if s["name"] == "too-big":
                    await admin.delete(f"/compute/v2.1/servers/{s['id']}")
        compute_daemon.admin_do(clean)


async def test_a_long_build_shows_the_daemons_progress_in_the_row_and_the_detail(
        compute_daemon, tmp_path):
    """The daemon's spawn is held (the build then reports 70%): the Task column and the
    detail's title show the percentage without a manual refresh, and both move on once the
    build ends."""
    import asyncio
    import threading

    from appliance.compute.progress_meter import BUILD_STEPS
    from appliance.compute.records import TaskState
    manager = compute_daemon.daemon.appliance.ctx.components.compute.manager
    real_spawn, gate = manager.driver.spawn, threading.Event()

    async def held_spawn(spec):
        await asyncio.to_thread(gate.wait, 60)
        return await real_spawn(spec)
    manager.driver.spawn = held_spawn
    percent = f"{BUILD_STEPS[TaskState.SPAWNING]}%"
    try:
        image_id = compute_daemon.admin_do(
            lambda admin: admin.get("/image/v2/images?name=tinyguest"))["images"][0]["id"]
        compute_daemon.admin_do(lambda admin: admin.post("/compute/v2.1/servers", {"server": {
            "name": "slow-1", "imageRef": image_id, "flavorRef": "1"}}))
        app = compute_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
        async with app.run_test(size=(120, 36)) as pilot:
            await log_in(pilot)
            await pilot.press("2")
            await settle(pilot)
            table = app.screen.query_one("#servers", DataTable)
            await _wait(pilot, lambda: any(r[0] == "slow-1" and percent in str(r[2])
                                           for r in _rows(table)), timeout=30)
            table.move_cursor(row=_names(table).index("slow-1"))
            await pilot.press("enter")
            await _wait(pilot, lambda: isinstance(app.screen, InstanceDetailScreen))
            title = app.screen.query_one("#detail-title")
            await _wait(pilot, lambda: f"spawning {percent}" in str(title.render()), timeout=30)
            gate.set()
            await _wait(pilot, lambda: "ACTIVE" in str(title.render())
                        and "%" not in str(title.render()), timeout=30)
    finally:
        gate.set()
        manager.driver.spawn = real_spawn
        compute_daemon.admin_do(_delete_named("slow-1"))


def _delete_named(name):
    async def go(admin):
        for s in (await admin.get(f"/compute/v2.1/servers?name={name}"))["servers"]:
            await admin.delete(f"/compute/v2.1/servers/{s['id']}")
    return go
