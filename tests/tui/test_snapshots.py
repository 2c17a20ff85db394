"""Snapshots of every screen and dialog at 80×24 and 160×48 over a real daemon.

The daemon is seeded with fixed names; the app hides ids and shows times through a frozen
clock (header 12:00:00, events 'now'), so every frame is the same on every run.
"""
from __future__ import annotations

import pytest

from tests.tui.harness import ThreadDaemon, log_in, login_screen, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    daemon = ThreadDaemon(tmp_path_factory.mktemp("snap-daemon")).start()

    async def seed(admin):
        projects = {}
        for name, desc in (("web", "public web tier"), ("data", "databases")):
            body = await admin.post("/identity/v3/projects",
                                    {"project": {"name": name, "description": desc}})
            projects[name] = body["project"]["id"]
        roles = {r["name"]: r["id"] for r in (await admin.get("/identity/v3/roles"))["roles"]}
        for user, project in (("alice", "web"), ("bob", "data")):
            body = await admin.post("/identity/v3/users", {"user": {
                "name": user, "password": "pw-" + user + "-123456", "default_project_id":
                projects[project], "email": f"{user}@example.org"}})
            await admin.put(f"/identity/v3/projects/{projects[project]}/users/"
                            f"{body['user']['id']}/roles/{roles['member']}")
    daemon.admin_do(seed)
    daemon.publish("instance.state", "instance", "db-1", "resize confirmed (m1.small → m1.medium)",
                   status="ACTIVE")
    daemon.publish("volume.attached", "volume", "data-1", "attached to db-1 as /dev/vdb")
    daemon.publish("instance.fault", "instance", "web-3",
                   "NoValidHost: RamFilter: 2048 MiB asked, 1536 free", status="ERROR")
    try:
        yield daemon
    finally:
        daemon.stop()


def _app(daemon: ThreadDaemon, tmp_path):
    return daemon.make_app(tmp_path, live=False, refresh_seconds=3600)


def _goto(*keys: str):
    async def run_before(pilot) -> None:
        await log_in(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_login_screen(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_login_refused_shows_the_daemon_message(snap_compare, seeded, tmp_path, size):
    async def run_before(pilot) -> None:
        (await login_screen(pilot)).query_one("#password").value = "wrong-password"
        await pilot.press("enter")
        await settle(pilot)
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_overview(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size, run_before=_goto())


@pytest.mark.parametrize("size", SIZES)
def test_instances_not_available_without_compute(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size, run_before=_goto("2"))


@pytest.mark.parametrize("size", SIZES)
def test_identity_users(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size, run_before=_goto("7"))


@pytest.mark.parametrize("size", SIZES)
def test_identity_role_assignments(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size,
                        run_before=_goto("7", "right_square_bracket", "right_square_bracket"))


@pytest.mark.parametrize("size", SIZES)
def test_new_project_form(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size,
                        run_before=_goto("7", "right_square_bracket", "n"))


@pytest.mark.parametrize("size", SIZES)
def test_events(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size, run_before=_goto("8"))


@pytest.mark.parametrize("size", SIZES)
def test_events_failures_only(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size, run_before=_goto("8", "f"))


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size,
                        run_before=_goto("2", "question_mark"))


@pytest.mark.parametrize("size", SIZES)
def test_confirm_delete_dialog(snap_compare, seeded, tmp_path, size):
    # users sort by name: admin, alice, bob → the cursor on alice
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size,
                        run_before=_goto("7", "down", "d"))


@pytest.mark.parametrize("size", SIZES)
def test_project_switcher_filtered(snap_compare, seeded, tmp_path, size):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=size,
                        run_before=_goto("ctrl+o", "a"))


def _goto_as(user: str, password: str, *keys: str):
    async def run_before(pilot) -> None:
        await log_in(pilot, password, user=user, project="")
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run_before


def test_footer_names_the_admins_nine_screen_keys(snap_compare, seeded, tmp_path):
    """An admin has Identity (7) and Audit (9): the footer says 1…9."""
    assert snap_compare(_app(seeded, tmp_path), terminal_size=(80, 24), run_before=_goto("5"))


def test_footer_names_only_the_members_screen_keys(snap_compare, seeded, tmp_path):
    """A member has neither Identity (7) nor Audit (9): the footer says 1…6,8."""
    assert snap_compare(_app(seeded, tmp_path), terminal_size=(80, 24),
                        run_before=_goto_as("alice", "pw-alice-123456", "5"))


def test_members_overview_names_only_their_screens(snap_compare, seeded, tmp_path):
    assert snap_compare(_app(seeded, tmp_path), terminal_size=(80, 24),
                        run_before=_goto_as("alice", "pw-alice-123456"))
