"""The object browser over the real Swift component: make a container, upload a file into a
pseudo-folder with progress, walk into the folders (delimiter listing), read its metadata,
download it back with progress and get the same bytes."""
from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, ProgressBar

from tests.tui.harness import ThreadDaemon, log_in, settle, wait_for_table, fill_form
from tests.tui.test_pilot import _names, _wait
from tui.dialogs.details import DetailsDialog
from tui.widgets.transfer import TransferBar, human_bytes


@pytest.fixture(scope="module")
def swift_daemon(tmp_path_factory):
    daemon = ThreadDaemon(tmp_path_factory.mktemp("swift-daemon"),
                          ["objects"]).start()
    try:
        yield daemon
    finally:
        daemon.stop()


async def test_upload_into_folders_browse_metadata_download(swift_daemon, tmp_path):
    data = bytes(range(256)) * 12289  # ~3 MiB: several 1 MiB chunks of progress
    src = tmp_path / "notes.txt"
    src.write_bytes(data)
    app = swift_daemon.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("n")
        await fill_form(pilot, name="docs")
        await wait_for_table(pilot, "#containers")
        assert _names(app.screen.query_one("#containers", DataTable)) == ["docs"]

        await pilot.press("u")
        await fill_form(pilot, path=str(src), name="2026/jan/notes.txt")
        bar = app.screen.query_one(TransferBar).query_one(ProgressBar)
        await _wait(pilot, lambda: bar.progress == len(data), timeout=20)
        assert bar.total == len(data)
        objects = app.screen.query_one("#objects", DataTable)
        await _wait(pilot, lambda: _names(objects) == ["▸ 2026/"])

        objects.focus()
        await pilot.press("enter")  # into 2026/
        await _wait(pilot, lambda: "▸ jan/" in _names(objects))
        objects.move_cursor(row=_names(objects).index("▸ jan/"))
        await pilot.press("enter")  # into 2026/jan/
        await _wait(pilot, lambda: "notes.txt" in _names(objects))
        assert str(app.screen.query_one("#path").render()) == "/docs/2026/jan/"

        objects.move_cursor(row=_names(objects).index("notes.txt"))
        await pilot.press("i")
        await _wait(pilot, lambda: isinstance(app.screen, DetailsDialog))
        rows = dict(app.screen.rows)
        assert rows["Content-Type"] == "text/plain"
        assert rows["Content-Length"].endswith(f"({len(data)} bytes)")
        await pilot.press("escape")
        await settle(pilot)

        target = tmp_path / "back.txt"
        await pilot.press("w")
        await fill_form(pilot, path=str(target))
        await _wait(pilot, lambda: target.exists() and target.read_bytes() == data, timeout=20)
        assert bar.progress == len(data)

        await pilot.press("backspace")  # up to 2026/
        await _wait(pilot, lambda: "▸ jan/" in _names(objects))


async def test_static_large_object_shows_its_whole_size(swift_daemon, tmp_path):
    """The browser's Size column is the SLO's assembled length, not its manifest's few bytes
    (Swift's listing reports the whole length; the container's bytes-used counts stored bytes)."""
    one, two = 700 * 1024, 900 * 1024

    async def seed(admin) -> None:
        base = f"/swift/v1/AUTH_{admin.session.project_id}/big"
        await admin.put(base)
        await admin.upload("PUT", base + "/seg/1", b"a" * one)
        await admin.upload("PUT", base + "/seg/2", b"b" * two)
        manifest = json.dumps([{"path": "/big/seg/1"}, {"path": "/big/seg/2"}]).encode()
        await admin.upload("PUT", base + "/whole.bin?multipart-manifest=put", manifest)
    swift_daemon.admin_do(seed)
    app = swift_daemon.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        await pilot.press("6")
        await settle(pilot)
        objects = app.screen.query_one("#objects", DataTable)
        await _wait(pilot, lambda: "whole.bin" in _names(objects))
        row = objects.get_row_at(_names(objects).index("whole.bin"))
        assert str(row[1]) == human_bytes(one + two) == "1.6 MiB"


async def test_a_browser_session_refuses_host_paths_and_says_what_to_use(swift_daemon, tmp_path):
    """In `monostack web` the TUI process runs on the appliance: a typed path would read or
    write the appliance's disk, so upload and download by path are refused, with the
    command to run from the operator's own machine."""
    from tui.dialogs.form import FormDialog
    src = tmp_path / "secret.txt"
    src.write_bytes(b"appliance-side bytes")
    app = swift_daemon.make_app(tmp_path, live=False, refresh_seconds=3600, web=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        await app.cloud.create_container("webdocs")
        await app.cloud.upload_object("webdocs", "a.txt", str(src), lambda n: None)
        await pilot.press("6")
        await settle(pilot)
        containers = app.screen.query_one("#containers", DataTable)
        await _wait(pilot, lambda: "webdocs" in _names(containers))
        containers.move_cursor(row=_names(containers).index("webdocs"))
        await pilot.press("enter")
        objects = app.screen.query_one("#objects", DataTable)
        await _wait(pilot, lambda: "a.txt" in _names(objects))
        objects.focus()
        objects.move_cursor(row=_names(objects).index("a.txt"))
        for key, instead in (("u", "swift upload webdocs FILE"),
                             ("w", "swift download webdocs a.txt")):
            app.clear_notifications()
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(app.screen, FormDialog)
            notes = [n for n in app._notifications if n.title == "Not in a browser session"]
            assert len(notes) == 1 and instead in notes[0].message, notes
        assert not (tmp_path / "a.txt").exists()
