"""A screen stands alone: mounted in a bare App that offers only the `ConsoleHost` protocol
(tui/host.py), not MonostackApp, it loads from a real daemon, follows live events and reports
errors through the host."""
from __future__ import annotations

from collections import deque
from datetime import timezone

from textual.app import App
from textual.widgets import DataTable

from appliance.client import MonostackClient
from appliance.errors import MonostackError
from tests.daemon import ADMIN_PASSWORD
from tests.tui.harness import FROZEN, settle
from tui.clock import Clock
from tui.cloud import Cloud, CloudEvent
from tui.host import ScreenEntry
from tui.screens.events import EventsScreen


class StandInHost(App):
    """Just the protocol: what a screen may ask of its app."""

    def __init__(self, cloud: Cloud) -> None:
        super().__init__()
        self.cloud = cloud
        self.clock = Clock(frozen=FROZEN, tz=timezone.utc)
        self.refresh_seconds = 3600.0
        self.logged_in = True
        self.recent_events: deque[CloudEvent] = deque()
        self.registered: list = []
        self.errors: list[BaseException] = []
        self.consoles: list[str] = []
        self.web_session = False

    def register_screen(self, screen) -> None:
        self.registered.append(screen)

    def report_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def open_console(self, server_id: str, name: str) -> None:
        self.consoles.append(server_id)

    async def log_in(self, user: str, password: str, project: str) -> None:
        await self.cloud.login(user, password, project)

    def screen_allowed(self, mode: str) -> bool:
        return True

    def screen_entries(self) -> tuple[ScreenEntry, ...]:
        return (ScreenEntry("8", "events", "Events"),)


async def test_events_screen_runs_in_a_stand_in_host(tui_daemon):
    tui_daemon.publish("instance.fault", "instance", "alone-1", "NoValidHost: no room")
    cloud = Cloud(MonostackClient(socket_path=tui_daemon.socket))
    await cloud.login("admin", ADMIN_PASSWORD, "admin")
    host = StandInHost(cloud)
    try:
        async with host.run_test(size=(80, 24)) as pilot:
            screen = EventsScreen()
            await host.push_screen(screen)
            await settle(pilot)
            assert host.registered == [screen]  # once: one timer, one load
            table = screen.query_one("#events", DataTable)
            names = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
            assert "alone-1" in names
            # A live event reaches the list without a fetch.
            screen.live_event(CloudEvent(id="live-x", seq=10**9, time=FROZEN, kind="instance.state",
                                         resource_type="instance", resource_id="i-1",
                                         project_id=None, message="ACTIVE",
                                         data={"name": "alone-live"}))
            await pilot.pause()
            assert str(table.get_row_at(0)[2]) == "alone-live"
            # Errors go to the host, never to the screen as a traceback.
            await cloud.client.close()
            cloud.client = MonostackClient(socket_path=tui_daemon.socket)  # not logged in
            screen.reload()
            await settle(pilot)
            assert host.errors and all(isinstance(e, MonostackError) for e in host.errors)
    finally:
        await cloud.close()
