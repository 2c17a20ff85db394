"""SerialConsole driven by Pilot over an in-memory transport: rendering, keys, chord, reconnect,
scrollback, resize and a 2 MB flood."""

from __future__ import annotations

import asyncio
import re
from time import perf_counter

from rich.color import Color
from textual import events
from rich.style import Style

from tests.tui.console_apps import (
    ConsoleScreenApp,
    ConsoleTestApp,
    FakeGuests,
    flood_payload,
    settle,
    wait_for,
)
from tui.screens.console import ConsoleScreen, ConsoleTarget
from tui.widgets.console_transport import LinkState, QueueTransport, ReconnectingTransport
from tui.widgets.serial_console import SerialConsole


def cell_style(console: SerialConsole, x: int, y: int) -> Style:
    """The final Rich style of one cell as the widget renders it."""
    strip = console.render_line(y)
    position = 0
    for segment in strip:
        if position <= x < position + len(segment.text):
            return segment.style or Style()
        position += len(segment.text)
    raise AssertionError(f"no cell at {x},{y}")


def row_text(console: SerialConsole, y: int) -> str:
    return console.render_line(y).text


# -- rendering ------------------------------------------------------------------------------
async def test_ansi_colours_and_attributes_render_as_rich_styles() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(60, 10)) as pilot:
        transport.feed(
            b"\x1b[31mred\x1b[0m \x1b[1;4mbold\x1b[0m \x1b[7mrev\x1b[0m "
            b"\x1b[92mbright\x1b[0m \x1b[38;5;208mc256\x1b[0m \x1b[38;2;1;2;3;48;5;21mtrue\x1b[0m"
        )
        await settle(pilot, app.terminal)
        console = app.terminal
        assert row_text(console, 0).startswith("red bold rev bright c256 true")
        assert cell_style(console, 0, 0).color == Color.parse("red")
        bold = cell_style(console, 4, 0)
        assert bold.bold and bold.underline
        assert cell_style(console, 9, 0).reverse
        assert cell_style(console, 13, 0).color == Color.parse("bright_green")
        assert cell_style(console, 20, 0).color == Color.parse("#ff8700")  # xterm colour 208
        true = cell_style(console, 25, 0)
        assert true.color == Color.parse("#010203")
        assert true.bgcolor == Color.parse("#0000ff")  # xterm colour 21
        # Default cells take the widget's own colours (theme), not the guest's.
        plain = cell_style(console, 3, 0)
        assert plain.color == console.rich_style.color
        assert plain.bgcolor == console.rich_style.bgcolor


async def test_cursor_movement_and_erase_place_text_where_the_guest_says() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(30, 8)) as pilot:
        transport.feed(
            b"hello world\rJ"  # CR then overwrite the first cell
            b"\x1b[3;5HXY"  # absolute position (row 3, col 5)
            b"\x1b[2A\x1b[3Cup"  # relative moves
            b"\x1b[5;1Hgarbage\x1b[5;3H\x1b[K"  # erase to end of line
            b"\x1b[8;28Hend"  # last row, wraps? no: autowrap only past the last column
        )
        await settle(pilot, app.terminal)
        lines = app.terminal.screen_lines
        assert lines[0].startswith("Jello worup")
        assert lines[2] == "    XY".ljust(30)
        assert lines[4] == "ga".ljust(30)
        assert lines[7].endswith("end")
        frame = app.terminal.frame
        assert (frame.cursor_x, frame.cursor_y) == (29, 7)


async def test_cursor_is_drawn_reversed_at_the_guest_cursor() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(20, 5)) as pilot:
        transport.feed(b"$ ls\r\n$ ")
        await settle(pilot, app.terminal)
        assert cell_style(app.terminal, 2, 1).reverse
        assert not cell_style(app.terminal, 3, 1).reverse
        transport.feed(b"\x1b[?25l")  # DECTCEM off: a full-screen program hides the cursor
        await settle(pilot, app.terminal)
        assert not cell_style(app.terminal, 2, 1).reverse


async def test_full_screen_program_in_alternate_screen_restores_the_shell() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(40, 10)) as pilot:
        transport.feed(b"$ top\r\n")
        transport.feed(b"\x1b[?1049h\x1b[H\x1b[2J\x1b[7m top \x1b[0m\x1b[10;1Hq to quit")
        await settle(pilot, app.terminal)
        assert app.terminal.screen_lines[0].startswith(" top ")
        assert app.terminal.screen_lines[9].startswith("q to quit")
        transport.feed(b"\x1b[?1049l")
        await settle(pilot, app.terminal)
        assert app.terminal.screen_lines[0].startswith("$ top")
        assert (app.terminal.frame.cursor_x, app.terminal.frame.cursor_y) == (0, 1)


async def test_resize_follows_the_widget() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(50, 12)) as pilot:
        transport.feed(b"prompt# ")
        await settle(pilot, app.terminal)
        assert (app.terminal.frame.columns, app.terminal.frame.lines) == (50, 12)
        await pilot.resize_terminal(90, 30)
        await wait_for(pilot, lambda: app.terminal.frame.columns == 90)
        assert app.terminal.frame.lines == 30
        assert app.terminal.screen_lines[0].startswith("prompt# ")
        assert app.terminal.terminal_size == (90, 30)


# -- keyboard -------------------------------------------------------------------------------
async def test_typed_keys_reach_the_guest_as_xterm_bytes() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.press("l", "s", "space", "-", "l", "enter")
        await pilot.press("backspace", "tab", "escape", "ctrl+a", "ctrl+d")
        await pilot.press("up", "down", "right", "left", "home", "end", "pageup", "pagedown")
        await pilot.press("delete", "f1", "f5", "f12", "shift+tab", "ctrl+up")
        await wait_for(pilot, lambda: transport.sent.endswith(b"\x1b[1;5A"))
        assert bytes(transport.sent) == (
            b"ls -l\r"
            b"\x7f\t\x1b\x01\x04"
            b"\x1b[A\x1b[B\x1b[C\x1b[D\x1b[H\x1b[F\x1b[5~\x1b[6~"
            b"\x1b[3~\x1bOP\x1b[15~\x1b[24~\x1b[Z\x1b[1;5A"
        )


async def test_app_bindings_do_not_steal_keys_from_the_guest() -> None:
    """ctrl+c, ctrl+q (app quit), ctrl+p (command palette) and tab (focus) all go to the guest."""
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.press("ctrl+c", "ctrl+q", "ctrl+p", "tab", "ctrl+z")
        await wait_for(pilot, lambda: len(transport.sent) == 5)
        assert bytes(transport.sent) == b"\x03\x11\x10\t\x1a"
        assert app.is_running
        assert app.focused is app.terminal


async def test_application_cursor_mode_switches_arrow_encoding() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(40, 10)) as pilot:
        transport.feed(b"\x1b[?1h")  # DECCKM, as vi/less set it
        await settle(pilot, app.terminal)
        await pilot.press("up", "left")
        transport.feed(b"\x1b[?1l")
        await settle(pilot, app.terminal)
        await pilot.press("up")
        await wait_for(pilot, lambda: len(transport.sent) == 9)
        assert bytes(transport.sent) == b"\x1bOA\x1bOD\x1b[A"


async def test_ctrl_bracket_posts_detach_and_sends_nothing_to_the_guest() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport, chord_timeout=0.2)
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.press("a", "ctrl+right_square_bracket")
        assert app.terminal.chord_armed
        await wait_for(pilot, lambda: "Detach" in app.kinds())
        assert not app.terminal.chord_armed
        # Any other key completes the chord at once (and is swallowed too).
        await pilot.press("ctrl+right_square_bracket", "x")
        await wait_for(pilot, lambda: app.kinds().count("Detach") == 2)
        await pilot.pause(0.1)
        assert bytes(transport.sent) == b"a"
        assert all(m.console is app.terminal for m in app.messages if type(m).__name__ == "Detach")


async def test_chord_n_p_switch_console_and_double_chord_sends_literal() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport, chord_timeout=5)
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.press("ctrl+right_square_bracket", "n")
        await pilot.press("ctrl+right_square_bracket", "p")
        await pilot.press("ctrl+right_square_bracket", "ctrl+right_square_bracket")
        await wait_for(pilot, lambda: transport.sent == b"\x1d")
        kinds = [k for k in app.kinds() if k not in ("Connected",)]
        assert kinds == ["NextConsole", "PreviousConsole"]


# -- link -----------------------------------------------------------------------------------
async def test_reconnects_after_the_stream_ends_and_keeps_the_screen() -> None:
    streams: list[QueueTransport] = []

    def connect() -> QueueTransport:
        stream = QueueTransport()
        stream.feed(b"boot %d\r\n" % (len(streams) + 1))
        streams.append(stream)
        return stream

    transport = ReconnectingTransport(connect, initial_delay=0.05, max_delay=0.2)
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(40, 10)) as pilot:
        await wait_for(pilot, lambda: app.terminal.screen_lines[0].startswith("boot 1"))
        assert app.terminal.link_state == LinkState.CONNECTED
        streams[0].end()  # the guest rebooted: the websocket closed
        await wait_for(pilot, lambda: "Disconnected" in app.kinds())
        disconnected = app.messages[app.kinds().index("Disconnected")]
        assert disconnected.reconnecting and "ended" in disconnected.reason
        await wait_for(pilot, lambda: len(streams) == 2 and app.terminal.screen_lines[1].startswith("boot 2"))
        assert app.terminal.link_state == LinkState.CONNECTED
        assert app.kinds().count("Connected") == 2
        assert app.terminal.screen_lines[0].startswith("boot 1")  # scrollback of the old boot kept
        await pilot.press("x")
        await wait_for(pilot, lambda: streams[1].sent == b"x")


async def test_reconnect_backs_off_while_the_guest_is_down() -> None:
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    def connect() -> QueueTransport:
        attempts.append(loop.time())
        if len(attempts) < 4:
            raise ConnectionRefusedError("console not ready")
        stream = QueueTransport()
        stream.feed(b"up\r\n")
        return stream

    states: list[LinkState] = []
    transport = ReconnectingTransport(connect, initial_delay=0.02, max_delay=1.0)
    transport.subscribe(lambda state, detail: states.append(state))
    assert await transport.read() == b"up\r\n"
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[1] > gaps[0] * 1.5  # exponential
    assert states[-1] == LinkState.CONNECTED
    await transport.close()
    assert await transport.read() == b""
    assert states[-1] == LinkState.CLOSED


async def test_plain_transport_eof_reports_disconnected_without_reconnect() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(40, 10)) as pilot:
        transport.feed(b"bye\r\n")
        transport.end()
        await wait_for(pilot, lambda: "Disconnected" in app.kinds())
        message = app.messages[app.kinds().index("Disconnected")]
        assert not message.reconnecting
        assert app.terminal.link_state == LinkState.CLOSED


# -- scrollback -----------------------------------------------------------------------------
async def test_scrollback_with_shift_pageup_stays_put_while_output_continues() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(30, 10)) as pilot:
        transport.feed(b"".join(b"line %03d\r\n" % i for i in range(100)))
        await settle(pilot, app.terminal)
        assert row_text(app.terminal, 0).startswith("line 091")
        await pilot.press("shift+pageup")
        assert app.terminal.scrollback == 9
        assert row_text(app.terminal, 0).startswith("line 082")
        # More output arrives: the view stays on the same lines.
        transport.feed(b"".join(b"more %03d\r\n" % i for i in range(5)))
        await settle(pilot, app.terminal)
        assert row_text(app.terminal, 0).startswith("line 082")
        await pilot.press("shift+pagedown", "shift+pagedown")
        assert app.terminal.scrollback == 0
        await pilot.press("shift+pageup")
        # Scrolling further; typing returns to the live screen and reaches the guest.
        scrolled = app.terminal.scrollback
        app.terminal.scroll_history(3)
        assert app.terminal.scrollback == scrolled + 3
        await pilot.press("q")
        assert app.terminal.scrollback == 0
        assert row_text(app.terminal, 0).startswith("line 096")
        await wait_for(pilot, lambda: transport.sent == b"q")


async def test_mouse_wheel_scrolls_history() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(30, 10)) as pilot:
        transport.feed(b"".join(b"line %03d\r\n" % i for i in range(50)))
        await settle(pilot, app.terminal)
        console = app.terminal
        console.post_message(events.MouseScrollUp(console, 5, 5, 0, -1, 0, False, False, False))
        await wait_for(pilot, lambda: console.scrollback == 3)
        assert row_text(console, 0).startswith("line 038")
        console.post_message(events.MouseScrollDown(console, 5, 5, 0, 1, 0, False, False, False))
        await wait_for(pilot, lambda: console.scrollback == 0)


# -- throughput -----------------------------------------------------------------------------
async def test_flood_of_2mb_renders_everything_and_the_ui_stays_responsive() -> None:
    """The strict ≤50 ms stall figure lives in tests/bench/bench_console.py; here we prove the
    UI keeps ticking and answering keys while 2 MB pour in, and that the last line arrives."""
    payload, last_line = flood_payload(2 * 1024 * 1024)
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    gaps: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        ticks = [perf_counter()]

        def tick() -> None:
            now = perf_counter()
            gaps.append(now - ticks[-1])
            ticks.append(now)

        app.set_interval(0.01, tick)
        for offset in range(0, len(payload), 16384):
            transport.feed(payload[offset : offset + 16384])
        await pilot.pause(0.2)
        assert app.terminal.bytes_rendered < len(payload), "flood finished too early to test"
        # Post the key as the terminal driver would: Pilot.press() waits for the process to go
        # idle first, which a flood never lets it do.
        pressed = perf_counter()
        app.post_message(events.Key("k", "k"))
        await wait_for(pilot, lambda: transport.sent == b"k", timeout=2)
        key_latency = perf_counter() - pressed
        mid_flood = app.terminal.bytes_rendered < len(payload)
        await settle(pilot, app.terminal, timeout=60)
        assert app.terminal.bytes_rendered == len(payload)
        lines = [line.rstrip() for line in app.terminal.screen_lines]
        assert lines[-2] == last_line
        print(f"flood: key latency {key_latency*1000:.0f} ms, max tick gap {max(gaps)*1000:.0f} ms, mid_flood={mid_flood}")
        # Loose bounds: this host is shared (load average up to 7 on 2 cores was seen); the
        # benchmark holds the 50 ms target. A parse on the UI path would stall for seconds.
        assert key_latency < 2.0
        assert mid_flood or key_latency < 0.5
        assert max(gaps) < 1.0, f"UI stalled {max(gaps) * 1000:.0f} ms"


# -- ConsoleScreen --------------------------------------------------------------------------
async def test_console_screen_tabs_next_previous_and_detach() -> None:
    guests = FakeGuests({"i-1": b"web-1 login: ", "i-2": b"db-1 login: "})
    app = ConsoleScreenApp(guests, [ConsoleTarget("i-1", "web-1"), ConsoleTarget("i-2", "db-1")])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConsoleScreen)
        await wait_for(pilot, lambda: len(guests.opened) == 2)
        consoles = screen.consoles
        await settle(pilot, *consoles)
        assert screen.active_console is consoles[0]  # the first instance asked for
        assert app.focused is consoles[0]
        assert "web-1" in str(screen.query_one("#console-title").render())
        assert "serial · 80×20 · connected" in str(screen.query_one("#console-status").render())
        await pilot.press("ctrl+right_square_bracket", "n")
        await wait_for(pilot, lambda: screen.active_console is consoles[1])
        assert app.focused is consoles[1]
        assert "db-1" in str(screen.query_one("#console-title").render())
        await pilot.press("r", "o", "o", "t", "enter")
        await wait_for(pilot, lambda: guests.current("i-2").sent == b"root\r")
        assert guests.current("i-1").sent == b""
        await pilot.press("ctrl+right_square_bracket", "p")
        await wait_for(pilot, lambda: screen.active_console is consoles[0])
        await pilot.press("ctrl+right_square_bracket", "p")  # wraps around
        await wait_for(pilot, lambda: screen.active_console is consoles[1])
        # The guest reboots: the header says so, then the console comes back by itself.
        guests.current("i-2").end()
        await wait_for(pilot, lambda: "reconnecting" in str(screen.query_one("#console-status").render()))
        await wait_for(pilot, lambda: len(guests.opened["i-2"]) == 2, timeout=5)
        await wait_for(pilot, lambda: "connected" == consoles[1].link_state.value)
        # Ctrl+] then a pause: back to monostack; the consoles stay open for next time.
        await pilot.press("ctrl+right_square_bracket", "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConsoleScreen))
        app.push_screen("consoles")
        await wait_for(pilot, lambda: isinstance(app.screen, ConsoleScreen))
        assert len(app.screen.consoles) == 2
        assert app.focused is consoles[1]
        assert guests.current("i-1").closed is False


async def test_console_screen_opens_another_console_and_closes_one() -> None:
    guests = FakeGuests()
    app = ConsoleScreenApp(guests, [])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConsoleScreen)
        assert screen.query_one("#console-empty").display
        console = await screen.open_console("3f2a-uuid", "web-9")
        await wait_for(pilot, lambda: "3f2a-uuid" in guests.opened)
        assert app.focused is console
        again = await screen.open_console("3f2a-uuid", "web-9")
        assert again is console and len(screen.consoles) == 1
        await screen.close_console("3f2a-uuid")
        await wait_for(pilot, lambda: guests.current("3f2a-uuid").closed)
        assert screen.consoles == []


# -- latency --------------------------------------------------------------------------------
class _CountingExecutor:
    """Stands in for the parse thread and counts what is sent there."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.jobs = 0

    def submit(self, fn, *args):
        self.jobs += 1
        return self.inner.submit(fn, *args)

    def shutdown(self, *args, **kwargs) -> None:
        self.inner.shutdown(*args, **kwargs)


async def test_an_echo_after_a_quiet_spell_is_drawn_without_the_parse_thread() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(60, 10)) as pilot:
        console = app.terminal
        await pilot.pause(0.1)
        counting = console._executor = _CountingExecutor(console._executor)
        transport.feed(b"$ ")
        await wait_for(pilot, lambda: row_text(console, 0).startswith("$ "))
        await pilot.pause(0.05)  # a quiet frame: the next chunk is an echo, not a flood
        pressed = console.bytes_rendered
        transport.feed(b"l")
        await wait_for(pilot, lambda: row_text(console, 0).startswith("$ l"))
        assert console.bytes_rendered == pressed + 1
        assert counting.jobs == 0
        # A flood still parses off the loop: a chunk over INLINE_BYTES goes to the thread.
        payload, last_line = flood_payload(64 * 1024)
        transport.feed(payload)
        await settle(pilot, console)
        assert counting.jobs >= 1
        assert [r for r in console.screen_lines if r.strip()][-1].rstrip() == last_line


# -- painting: only the rows that changed, at once ----------------------------------------
def _chop_rows(compositor, cls, band, rows) -> list[list]:
    """Each row of `band` as the compositor of class `cls` would send it to the terminal."""
    from textual.strip import Strip

    compositor.__class__ = cls
    chops = compositor._render_chops(band, rows.__contains__)
    return [list(Strip.join([s for s in chops[y].values() if s is not None])) for y in rows]


async def test_line_compositor_sends_the_rows_textual_would_send() -> None:
    from textual._compositor import Compositor
    from textual.geometry import Region

    from tests.tui.console_apps import coloured_session
    from tui.compositor import LineCompositor

    guests = FakeGuests({"i-1": coloured_session()})
    app = ConsoleScreenApp(guests, [ConsoleTarget("i-1", "web-1")])
    async with app.run_test(size=(70, 20), notifications=True) as pilot:
        screen = app.screen
        assert isinstance(screen, ConsoleScreen)
        await wait_for(pilot, lambda: bool(screen.consoles) and screen.consoles[0].bytes_received)
        await settle(pilot, *screen.consoles)
        app.notify("a toast over the console's rows", timeout=60)  # a layer in front
        await wait_for(pilot, lambda: any(type(w).__name__ == "Toast"
                                          for w in screen._compositor.visible_widgets))
        compositor = screen._compositor
        assert isinstance(compositor, LineCompositor)
        bands = [Region(0, y, 70, 1) for y in range(20)]
        bands += [Region(0, 2, 70, 9), Region(10, 12, 30, 6), Region(0, 0, 70, 20)]
        try:
            for band in bands:
                rows = list(range(band.y, band.bottom))
                ours = _chop_rows(compositor, LineCompositor, band, rows)
                theirs = _chop_rows(compositor, Compositor, band, rows)
                assert ours == theirs, band
        finally:
            compositor.__class__ = LineCompositor


async def test_the_cursor_cell_matches_strip_divide_and_blur_underlines_it() -> None:
    from rich.segment import Segment
    from textual.strip import Strip

    bold, red = Style(bold=True), Style(color="red")
    strip = Strip([Segment("$ ", bold), Segment("", None), Segment("ls -l", red),
                   Segment("     ", None)], 12)
    for x in range(12):
        for focused in (True, False):
            fast = SerialConsole._draw_cursor(strip, x, focused)
            before, cell, after = strip.divide([x, x + 1, 12])[:3]
            marked = [Segment(seg.text, (seg.style or Style()) + (
                Style(reverse=not (seg.style or Style()).reverse) if focused
                else Style(underline=True))) for seg in cell]
            assert list(fast) == list(Strip.join([before, Strip(marked, 1), after])), (x, focused)
    wide = Strip([Segment("日本", None), Segment("ab", None)], 6)
    assert SerialConsole._draw_cursor(wide, 4, True).text == "日本ab"


async def test_a_theme_switch_restyles_the_console() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(20, 5)) as pilot:
        transport.feed(b"$ ")
        await settle(pilot, app.terminal)
        dark = cell_style(app.terminal, 0, 0).bgcolor
        app.theme = "textual-light"
        await pilot.pause(0.1)
        light = cell_style(app.terminal, 0, 0).bgcolor
        assert light != dark and light == app.terminal.rich_style.bgcolor


async def test_an_echo_is_painted_in_the_step_that_reads_it() -> None:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=(60, 10)) as pilot:
        console = app.terminal
        transport.feed(b"$ ")
        await wait_for(pilot, lambda: row_text(console, 0).startswith("$ "))
        await pilot.pause(0.05)
        painted: list[str] = []
        display = app._display

        def record(screen, update) -> None:
            if update is not None:
                ansi = "".join(update.render_segments(app.console))
                painted.append(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", ansi))
            display(screen, update)
        app._display = record  # type: ignore[method-assign]
        received = console.bytes_received
        transport.feed(b"l")
        while console.bytes_received == received:
            await asyncio.sleep(0)
        # The read loop's step that took the byte also drew it: no idle, message or timer hop.
        assert painted and "$ l" in painted[0]
        assert not console._repaint_required and not app.screen._dirty_widgets
        await settle(pilot, console)
        assert app.screen._compositor.render_strips()[0].text.startswith("$ l")
