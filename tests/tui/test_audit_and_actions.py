"""The operator console's side of observability (issue 18), over real daemons: the instance
detail lists the server's actions and says why a build failed (for a member too, who asks at
compute 2.60), and the Audit screen shows the daemon's audit trail to admins — filtered by
outcome and user on the daemon's side — while a member gets no screen, or a notification."""
from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import DataTable, Static

from appliance.client import MonostackClient
from appliance.errors import MonostackError
from tests.tui.cloud_seed import start_cloud, stop_cloud
from tests.tui.harness import ThreadDaemon, log_in, settle, wait_for_table
from tests.tui.test_pilot import _notes, _rows, _wait
from tui.commands import MonostackCommands
from tui.dialogs.error import ErrorDialog
from tui.screens.audit import AuditScreen, short_path
from tui.screens.instance_detail import InstanceDetailScreen

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
MEMBER_PASSWORD = "dave-password-123"


async def _grant_member(admin: MonostackClient, user: str, password: str,
                        project_id: str) -> None:
    roles = {r["name"]: r["id"] for r in (await admin.get("/identity/v3/roles"))["roles"]}
    body = await admin.post("/identity/v3/users", {"user": {"name": user, "password": password}})
    await admin.put(f"/identity/v3/projects/{project_id}/users/{body['user']['id']}"
                    f"/roles/{roles['member']}")


async def _failed_login(daemon: ThreadDaemon, user: str, password: str) -> None:
    client = MonostackClient(socket_path=daemon.socket)
    try:
        with pytest.raises(MonostackError):
            await client.login(user, password)
    finally:
        await client.close()


def _plain(widget: Static) -> str:
    """What a Static shows, as text (its content may be a Rich table or group)."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


# -- instance actions -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    daemon = start_cloud(tmp_path_factory.mktemp("cloud-actions"))
    try:
        yield daemon
    finally:
        stop_cloud(daemon)


async def test_a_member_sees_why_a_build_failed(cloud, tmp_path):
    cloud.admin_do(lambda admin: _grant_member(admin, "dave", MEMBER_PASSWORD,
                                               admin.session.project_id))
    app = cloud.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, MEMBER_PASSWORD, user="dave", project="admin")
        assert not app.cloud.is_admin
        await pilot.press("2")
        await wait_for_table(pilot, "#servers")
        await pilot.press("enter")  # big-1 (ERROR) sorts first
        await _wait(pilot, lambda: isinstance(app.screen, InstanceDetailScreen)
                    and app.screen.loaded)
        await settle(pilot)
        panel = app.screen.query_one("#detail-actions", Static)
        assert panel.display
        text = _plain(panel)
        assert "create" in text and "Error" in text
        # The failing step and its reason: the events a member sees only at 2.51 and later.
        assert "compute__do_build_and_run_instance" in text
        assert "No valid host was found" in text
        assert not [n for n in _notes(app) if "Traceback" in n]


def test_audit_paths_cut_ids_as_the_other_screens_do():
    assert short_path("/compute/v2.1/servers/91a45c2e-0d3f-4b7e-9a59-0c3f2b1d7e8a/action") \
        == "/compute/v2.1/servers/91a45c2e…/action"
    assert short_path("/volume/v3/0c3f2b1d7e8a4b7e9a590c3f2b1d7e8a/volumes") \
        == "/volume/v3/0c3f2b1d…/volumes"
    assert short_path("/identity/v3/projects") == "/identity/v3/projects"


async def test_overview_plots_the_api_request_rate_from_metrics(cloud, tmp_path):
    # refresh 1.5 s: the overview samples every 0.3 s, so the rate appears within a second.
    app = cloud.make_app(tmp_path, live=False, refresh_seconds=1.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        screen = app.screen
        before = (await app.cloud.metrics()).api_requests
        await _wait(pilot, lambda: len(screen.api_history) >= 2)
        now = str(screen.query_one("#api-now", Static).content)
        assert now.endswith("/s") and now[:-2].rstrip("k").isdigit()
        assert max(screen.api_history) > 0  # its own requests, at least, between samples
        sample = await app.cloud.metrics()
        assert sample.api_requests > before
        # The same numbers /metrics gives Prometheus: the seeded guests by state.
        assert sample.guests.get("active") == 1 and sample.guests.get("error") == 1


# -- audit trail ------------------------------------------------------------------------------

@pytest.fixture
def audited(tmp_path_factory):
    """An identity-only daemon whose trail holds only id-free paths, so frames are stable:
    the seeding admin's login, a refused login, a project and a user created, a bad request.
    One per test: every login of a test's app adds to the trail."""
    daemon = ThreadDaemon(tmp_path_factory.mktemp("audit-daemon")).start()

    async def seed(admin: MonostackClient) -> None:
        await _failed_login(daemon, "mallory", "guess-123456")
        await admin.post("/identity/v3/projects", {"project": {"name": "blue"}})
        await admin.post("/identity/v3/users", {"user": {"name": "carol",
                                                         "password": "carol-password-1"}})
        with pytest.raises(MonostackError):
            await admin.post("/identity/v3/projects", {"project": {}})
        await _failed_login(daemon, "carol", "not-her-password")
    daemon.admin_do(seed)
    try:
        yield daemon
    finally:
        daemon.stop()


def _to_audit(*keys: str):
    async def run_before(pilot) -> None:
        await log_in(pilot)
        await pilot.press("9")
        await wait_for_table(pilot, "#audit")
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_audit_screen(snap_compare, audited, tmp_path, size):
    app = audited.make_app(tmp_path, live=False, refresh_seconds=3600)
    assert snap_compare(app, terminal_size=size, run_before=_to_audit())


@pytest.mark.parametrize("size", SIZES)
def test_audit_failures_only(snap_compare, audited, tmp_path, size):
    app = audited.make_app(tmp_path, live=False, refresh_seconds=3600)
    assert snap_compare(app, terminal_size=size, run_before=_to_audit("o"))


async def test_audit_filters_reach_the_daemon(audited, tmp_path):
    app = audited.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        await log_in(pilot)
        await pilot.press("9")
        await wait_for_table(pilot, "#audit")
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        table = screen.query_one("#audit", DataTable)
        rows = _rows(table)
        outcomes = {r[1].split()[0] for r in rows}
        assert outcomes == {"success", "failure"}
        assert any(r[3] == "POST" and r[4] == "/identity/v3/projects"
                   and r[5] == "local socket" for r in rows)
        # o: the daemon is asked for failures only (the refused logins and the 400).
        await pilot.press("o")
        await _wait(pilot, lambda: screen.outcome == "failure" and all(
            r[1].startswith("failure") for r in _rows(table)) and table.row_count)
        await settle(pilot)
        statuses = sorted(r[1] for r in _rows(table))
        assert statuses == ["failure 400", "failure 401", "failure 401"]
        await pilot.press("o", "o")  # successes, then all again
        await settle(pilot)
        assert screen.outcome is None
        # /admin ⏎: a name becomes the admin's id, and the daemon answers only their events.
        await pilot.press("slash", *"admin", "enter")
        await _wait(pilot, lambda: screen.user_id is not None)
        await settle(pilot)
        rows = _rows(table)
        assert rows and {r[2] for r in rows} == {"admin"}
        assert len(rows) == len(screen.records)
        # Esc clears it: everyone again, including the refused logins of no known user.
        await pilot.press("escape")
        await _wait(pilot, lambda: screen.user_id is None and any(
            r[2] == "—" for r in _rows(table)))
        # Enter on a row: its details, request id included.
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog) and "request id:" in app.screen.message


async def test_a_member_has_no_audit_screen_and_a_refusal_is_a_notification(audited,
                                                                               tmp_path):
    audited.admin_do(lambda admin: _grant_member(admin, "erin", "erin-password-1",
                                                 admin.session.project_id))
    app = audited.make_app(tmp_path, live=False, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, "erin-password-1", user="erin", project="admin")
        await pilot.press("9")
        await settle(pilot)
        assert not isinstance(app.screen, AuditScreen)
        names = [name for name, _, _ in MonostackCommands(app.screen)._commands()]
        assert "Go to Audit" not in names and "Go to Events" in names
        # Shown anyway (as after a role revoked mid-session): the daemon's 403, as a note.
        await app.push_screen(AuditScreen())
        await _wait(pilot, lambda: any("audit" in n.lower() or "policy" in n.lower()
                                       for n in _notes(app)))
        await settle(pilot)
        assert app.screen.query_one("#audit", DataTable).row_count == 0
        assert not [n for n in _notes(app) if "Traceback" in n or "Unexpected" in n]
