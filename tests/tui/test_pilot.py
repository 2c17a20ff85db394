"""Pilot-driven tests of the TUI against a real daemon: log in, identity, errors, deletes,
live updates from the event stream, the lost-connection banner, non-admin views."""
from __future__ import annotations

import json
import os

import pytest
from textual.widgets import DataTable, Input

from appliance.client import MonostackClient
from tests.daemon import ADMIN_PASSWORD, InProcessDaemon
from tests.tui.harness import ThreadDaemon, log_in, login_screen, settle
from tui.commands import MonostackCommands
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import FormDialog
from tui.screens.identity import IdentityScreen


def _rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def _names(table: DataTable) -> list[str]:
    return [r[0] for r in _rows(table)]


async def _wait(pilot, predicate, timeout: float = 10.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


def _notes(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_login_remembers_user_and_project_never_the_password(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await login_screen(pilot)
        assert screen.query_one("#user", Input).value == "admin"
        screen.query_one("#password", Input).value = "nope-nope-nope"
        await pilot.press("enter")
        await settle(pilot)
        assert "requires authentication" in str(screen.query_one("#login-error").render())
        assert not app.logged_in
        await log_in(pilot)
        assert app.logged_in and app.who == "admin@admin (admin)"
    saved = json.loads((tmp_path / "tui.json").read_text())
    assert saved["last_user"] == "admin" and saved["last_project"] == "admin"
    assert ADMIN_PASSWORD not in (tmp_path / "tui.json").read_text()


async def test_identity_lists_users_and_creates_a_project(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("7")
        await settle(pilot)
        assert isinstance(app.screen, IdentityScreen)
        assert "admin" in _names(app.screen.query_one("#users", DataTable))
        await pilot.press("right_square_bracket")  # Projects tab
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, FormDialog)
        await pilot.press(*"ops-lab")
        await pilot.press("ctrl+s")
        await settle(pilot)
        projects = app.screen.query_one("#projects", DataTable)
        await _wait(pilot, lambda: "ops-lab" in _names(projects))
    names = [p["name"] for p in tui_daemon.admin_do(
        lambda c: c.get("/identity/v3/projects"))["projects"]]
    assert "ops-lab" in names


async def test_a_daemon_error_becomes_a_notification_with_the_openstack_text(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("7", "right_square_bracket", "n")
        await settle(pilot)
        await pilot.press(*"admin")  # the admin project exists already: Conflict
        await pilot.press("ctrl+s")
        await settle(pilot)
        await _wait(pilot, lambda: any("Conflict" in n for n in _notes(app)))
        note = next(n for n in _notes(app) if "Conflict" in n)
        assert "admin" in note and "Traceback" not in note


async def test_delete_asks_first_and_no_keeps_the_user(tui_daemon, tmp_path):
    tui_daemon.admin_do(lambda c: c.post("/identity/v3/users", {"user": {
        "name": "zz-temp", "password": "zz-temp-password-1"}}))
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("7")
        await settle(pilot)
        users = app.screen.query_one("#users", DataTable)
        users.move_cursor(row=_names(users).index("zz-temp"))
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert "zz-temp" in _names(users)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        await _wait(pilot, lambda: "zz-temp" not in _names(users))
    names = [u["name"] for u in tui_daemon.admin_do(
        lambda c: c.get("/identity/v3/users"))["users"]]
    assert "zz-temp" not in names


async def test_services_missing_from_the_catalog_show_not_available(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        for key in "23456":
            await pilot.press(key)
            await settle(pilot)
            assert app.screen.query_one("#switcher").current == "unavailable", key
            assert "not available" in str(app.screen.query_one("#unavailable").render())


async def test_live_events_refresh_the_events_screen(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("8")
        await settle(pilot)
        table = app.screen.query_one("#events", DataTable)
        await _wait(pilot, lambda: app.link_up)
        tui_daemon.publish("instance.fault", "instance", "live-one", "NoValidHost: no room")
        await _wait(pilot, lambda: any("live-one" in r for row in _rows(table) for r in row))


async def test_lost_connection_shows_a_banner_and_reconnects(tmp_path):
    daemon = ThreadDaemon(tmp_path / "d").start()
    try:
        app = daemon.make_app(tmp_path, live=True, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await log_in(pilot)
            await _wait(pilot, lambda: app.link_up)
            daemon.call(daemon.daemon.__aexit__(None, None, None))
            await _wait(pilot, lambda: not app.link_up)
            banner = app.screen.query_one("#banner")
            assert banner.has_class("-shown")
            assert "reconnecting" in str(banner.render())

            async def restart():  # like `monostack serve` again: same state, tokens still valid
                daemon.daemon = InProcessDaemon(daemon.config, components=[])
                await daemon.daemon.appliance.startup()
            daemon.call(restart())
            await _wait(pilot, lambda: app.link_up, timeout=20)
            assert not app.screen.query_one("#banner").has_class("-shown")
    finally:
        daemon.admin = None
        daemon.stop()


async def test_non_admin_sees_no_identity_screen_and_can_switch_projects(tui_daemon, tmp_path):
    async def seed(admin: MonostackClient) -> None:
        roles = {r["name"]: r["id"] for r in (await admin.get("/identity/v3/roles"))["roles"]}
        user = (await admin.post("/identity/v3/users", {"user": {
            "name": "carol", "password": "carol-password-1"}}))["user"]
        for name in ("blue", "green"):
            project = (await admin.post("/identity/v3/projects",
                                        {"project": {"name": name}}))["project"]
            await admin.put(f"/identity/v3/projects/{project['id']}/users/{user['id']}"
                            f"/roles/{roles['member']}")
    tui_daemon.admin_do(seed)
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, "carol-password-1", user="carol", project="blue")
        assert app.who == "carol@blue"
        await pilot.press("7")
        await settle(pilot)
        assert not isinstance(app.screen, IdentityScreen)
        commands = [name for name, _, _ in MonostackCommands(app.screen)._commands()]
        assert "Go to Identity" not in commands and "Go to Events" in commands
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("down", "enter")  # blue, green: pick green
        await settle(pilot)
        await _wait(pilot, lambda: app.who == "carol@green")


async def test_palette_lists_global_and_screen_actions(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        await pilot.press("7")
        await settle(pilot)
        names = [name for name, _, _ in MonostackCommands(app.screen)._commands()]
        for expected in ("Go to Instances", "Switch project", "Toggle light/dark theme",
                         "Identity: Grant role", "Identity: Delete"):
            assert expected in names
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"grant")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FormDialog)


async def test_theme_toggle_is_remembered(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await login_screen(pilot)
        dark = app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark != dark
    assert json.loads((tmp_path / "tui.json").read_text())["theme"] == app.theme


def test_no_color_is_respected(tui_daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert tui_daemon.make_app(tmp_path).no_color


async def test_a_login_screen_mounted_without_its_fields_ends_quietly():
    """A web console's spare session asked to quit while it starts mounts its login screen
    without the fields: focusing one must not print a traceback into the console's log."""
    from textual.app import App

    from tui.screens.login import LoginScreen

    class Bare(LoginScreen):
        def compose(self):
            yield from ()

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(Bare("admin"))

    app = Host()
    async with app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(app.screen, Bare)
    assert app.return_code in (None, 0)
