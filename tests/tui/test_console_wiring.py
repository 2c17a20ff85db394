"""The console screen wired into the app: `c` on an instance opens a tab fed by the transport
the app builds (here a queue standing in for the daemon's websocket), keys reach the guest, and
the escape chord returns to the screen underneath."""
from __future__ import annotations

from tests.tui.harness import log_in, settle
from tests.tui.test_pilot import _wait
from tui.screens.console import ConsoleScreen
from tui.widgets.console_transport import QueueTransport


async def test_open_console_type_and_detach(tui_daemon, tmp_path):
    app = tui_daemon.make_app(tmp_path, live=False)
    links: dict[str, QueueTransport] = {}

    async def fake_transport(server_id: str) -> QueueTransport:
        links[server_id] = link = QueueTransport()
        link.feed(b"tinyguest login: ")
        return link
    app._console_transport = fake_transport  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        overview = app.screen
        app.open_console("srv-1", "web-1")
        await _wait(pilot, lambda: isinstance(app.screen, ConsoleScreen) and "srv-1" in links
                    and app.screen.active_console is not None)
        console = app.screen.active_console
        await _wait(pilot, lambda: "tinyguest login:" in "\n".join(console.screen_lines))
        await pilot.press("r", "o", "o", "t", "enter")
        await _wait(pilot, lambda: bytes(links["srv-1"].sent).endswith(b"root\r"))
        await pilot.press("ctrl+right_square_bracket", "q")
        await settle(pilot)
        assert app.screen is overview
