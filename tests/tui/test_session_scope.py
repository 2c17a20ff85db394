"""Logging in without a project, and switching projects: the session always ends up scoped
(the user's only project, or the one they pick), the console says why, and panels drop what
the old scope said."""
from __future__ import annotations

from appliance.client import MonostackClient
from tests.tui.harness import log_in, login_screen, settle
from tests.tui.test_pilot import _notes, _wait
from tui.screens.projects import ProjectSwitcher


def _user_with_projects(daemon, user: str, projects: list[str]) -> None:
    async def seed(admin: MonostackClient) -> None:
        roles = {r["name"]: r["id"] for r in (await admin.get("/identity/v3/roles"))["roles"]}
        u = (await admin.post("/identity/v3/users", {"user": {
            "name": user, "password": f"{user}-password-1"}}))["user"]
        for name in projects:
            p = (await admin.post("/identity/v3/projects", {"project": {"name": name}}))["project"]
            await admin.put(f"/identity/v3/projects/{p['id']}/users/{u['id']}"
                            f"/roles/{roles['member']}")
    daemon.admin_do(seed)


async def test_empty_project_scopes_to_the_users_only_project_and_says_why(tui_daemon, tmp_path):
    _user_with_projects(tui_daemon, "dave", ["solo"])
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, "dave-password-1", user="dave", project="")
        assert app.who == "dave@solo"
        assert any("no default project" in n and "solo" in n for n in _notes(app))
        assert not any("Policy" in n for n in _notes(app))


async def test_empty_project_with_several_projects_asks_which(tui_daemon, tmp_path):
    _user_with_projects(tui_daemon, "erin", ["red", "teal"])
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await login_screen(pilot)
        screen.query_one("#user").value = "erin"
        screen.query_one("#project").value = ""
        screen.query_one("#password").value = "erin-password-1"
        await pilot.press("enter")
        await _wait(pilot, lambda: isinstance(app.screen, ProjectSwitcher)
                    and app.screen.query_one("OptionList").option_count == 2)
        assert "no default project" in str(app.screen.query_one("#reason").render())
        await pilot.press("t", "e", "enter")  # filter to teal, Enter in the filter box
        await _wait(pilot, lambda: app.who == "erin@teal"
                    and app.screen.__class__.__name__ == "OverviewScreen")


async def test_switcher_takes_enter_in_its_filter_and_clears_old_errors(tui_daemon, tmp_path):
    _user_with_projects(tui_daemon, "fred", ["amber", "blue-sky", "cyan"])
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, "fred-password-1", user="fred", project="amber")
        app.notify("Policy doesn't allow compute:list_servers", severity="error")
        await pilot.press("ctrl+o")
        await _wait(pilot, lambda: isinstance(app.screen, ProjectSwitcher)
                    and app.screen.query_one("OptionList").option_count == 3)
        await pilot.press("s", "k", "y", "enter")
        await _wait(pilot, lambda: app.who == "fred@blue-sky")
        await settle(pilot)
        assert not any("Policy" in n for n in _notes(app))
        assert any("blue-sky" in n for n in _notes(app))



async def test_one_enter_in_the_password_logs_in_with_the_project_left_empty(tui_daemon, tmp_path):
    """Typed as an operator does: user, Tab, password, Enter — the optional project field is
    not walked into first (that took a second Enter on every login)."""
    _user_with_projects(tui_daemon, "fay", ["only"])
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await login_screen(pilot)
        screen.project = ""  # a first login: no project remembered (an SSH operator's first)
        screen.query_one("#user").value = ""
        screen.query_one("#project").value = ""
        screen.query_one("#user").focus()
        await pilot.press(*"fay", "tab", *"fay-password-1", "enter")
        await _wait(pilot, lambda: app.who == "fay@only"
                    and app.screen.__class__.__name__ == "OverviewScreen")


async def test_enter_typed_ahead_during_a_login_does_not_start_another(tui_daemon, tmp_path):
    """A fast typist (or a browser sending a whole line at once) presses Enter again while the
    first login is on its way: the second Enter used to cancel the first login (the worker is
    exclusive) and submit the password with the extra keys in it."""
    _user_with_projects(tui_daemon, "gus", ["one"])
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await login_screen(pilot)
        screen.project = ""
        screen.query_one("#project").value = ""
        screen.query_one("#user").value = "gus"
        screen.query_one("#password").value = "gus-password-1"
        screen.submit()
        # keys typed ahead reach the password field, and Enter again, before the login answers
        screen.query_one("#password").value += "xyz"
        screen.submit()
        await _wait(pilot, lambda: app.who == "gus@one"
                    and app.screen.__class__.__name__ == "OverviewScreen")
        assert not any("authentication" in n for n in _notes(app))


async def test_user_tab_password_enter_arriving_in_one_read_logs_in(tui_daemon, tmp_path):
    """A password manager's auto-type (or a paste) delivers `user<Tab>password<Enter>` in one
    read of the terminal: every key is queued before the first is handled. Tab used to take
    effect only after the keys behind it had gone to the user field ("halhal-password-1" as
    the user, found walking the installed appliance over SSH)."""
    from textual import events

    _user_with_projects(tui_daemon, "hal", ["hal-home"])
    app = tui_daemon.make_app(tmp_path, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await login_screen(pilot)
        screen.project = ""
        screen.query_one("#user").value = ""
        screen.query_one("#project").value = ""
        screen.query_one("#user").focus()
        await pilot.pause()
        keys = [(c, c) for c in "hal"] + [("tab", "\t")] + [(c, c) for c in "hal-password-1"]
        keys += [("enter", "\r")]
        for key, char in keys:  # all queued at once, as the driver posts one read's keys
            app.post_message(events.Key("minus" if char == "-" else key, char))
        await _wait(pilot, lambda: app.who == "hal@hal-home"
                    and app.screen.__class__.__name__ == "OverviewScreen")
