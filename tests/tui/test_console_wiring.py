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


async def test_keys_reach_a_focused_console_without_queueing_and_in_order(tui_daemon, tmp_path):
    from textual import events

    app = tui_daemon.make_app(tmp_path, live=False)
    links: dict[str, QueueTransport] = {}

    async def fake_transport(server_id: str) -> QueueTransport:
        links[server_id] = link = QueueTransport()
        link.feed(b"$ ")
        return link
    app._console_transport = fake_transport  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot)
        app.open_console("srv-1", "web-1")
        await _wait(pilot, lambda: isinstance(app.screen, ConsoleScreen) and "srv-1" in links
                    and app.focused is app.screen.active_console)
        console = app.screen.active_console
        await settle(pilot)
        # Straight to the console: neither the app's queue nor the console's holds it.
        assert app.post_message(events.Key("x", "x"))
        assert app._message_queue.empty() and console._message_queue.empty()
        await _wait(pilot, lambda: bytes(links["srv-1"].sent) == b"x")
        # A key already waiting in the console's queue is not overtaken.
        console.post_message(events.Key("a", "a"))
        app.post_message(events.Key("b", "b"))
        await _wait(pilot, lambda: bytes(links["srv-1"].sent) == b"xab")
        # ctrl+q (an app binding, priority) still goes to the guest, as before.
        app.post_message(events.Key("ctrl+q", None))
        await _wait(pilot, lambda: bytes(links["srv-1"].sent) == b"xab\x11")
        assert app.is_running
