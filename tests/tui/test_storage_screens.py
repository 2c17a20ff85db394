"""Images and volumes screens over a daemon with the image and volume components: upload an
image from a local file with progress, then make a volume from it and extend it."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, ProgressBar

from tests.tui.harness import ThreadDaemon, log_in, settle, fill_form
from tests.tui.test_pilot import _names, _rows, _wait
from tui.widgets.transfer import TransferBar

COMPONENTS = ["images",
              "volumes"]


@pytest.fixture(scope="module")
def storage_daemon(tmp_path_factory):
    daemon = ThreadDaemon(tmp_path_factory.mktemp("storage-daemon"), COMPONENTS).start()
    try:
        yield daemon
    finally:
        daemon.stop()


async def test_upload_an_image_with_progress_then_a_volume_from_it(storage_daemon, tmp_path):
    disk = tmp_path / "tiny.raw"
    disk.write_bytes(b"\0" * (3 * 1024 * 1024 + 17))
    app = storage_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert app.screen.query_one("#switcher").current == "body"
        await pilot.press("u")
        await settle(pilot)
        await fill_form(pilot, path=str(disk), name="tiny", disk_format="raw")
        table = app.screen.query_one("#images", DataTable)
        await _wait(pilot, lambda: any(r[0] == "tiny" and r[1] == "ACTIVE"
                                       for r in _rows(table)), timeout=30)
        bar = app.screen.query_one(TransferBar).query_one(ProgressBar)
        assert bar.total == disk.stat().st_size and bar.progress == disk.stat().st_size

        await pilot.press("4")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        image_id = (await app.cloud.images())[0].id
        await fill_form(pilot, name="from-tiny", size="1", image=image_id)
        volumes = app.screen.query_one("#volumes", DataTable)
        await _wait(pilot, lambda: any(r[0] == "from-tiny" and r[1] == "AVAILABLE"
                                       for r in _rows(volumes)), timeout=60)
        volumes.move_cursor(row=_names(volumes).index("from-tiny"))
        await pilot.press("e")
        await settle(pilot)
        await fill_form(pilot, size="2")
        await _wait(pilot, lambda: any(r[0] == "from-tiny" and r[2] == "2 GiB"
                                       for r in _rows(volumes)), timeout=60)


async def test_a_browser_session_refuses_an_image_upload_by_path(storage_daemon, tmp_path):
    from tui.dialogs.form import FormDialog
    app = storage_daemon.make_app(tmp_path, live=False, refresh_seconds=3600, web=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert not isinstance(app.screen, FormDialog)
        notes = [n for n in app._notifications if n.title == "Not in a browser session"]
        assert len(notes) == 1 and "openstack image create --file" in notes[0].message
    terminal = storage_daemon.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with terminal.run_test(size=(80, 24)) as pilot:  # the terminal console still may
        await log_in(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(terminal.screen, FormDialog)
