"""Snapshots of the console screen: a coloured shell session and a full-screen program, at
80×24 and 160×48. Guest output is deterministic; the full-screen layout is drawn for the
console's actual size (a serial guest is told its size with `stty`, we just draw to fit)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.console_apps import (
    ConsoleScreenApp,
    FakeGuests,
    coloured_session,
    full_screen_program,
    settle,
    wait_for,
)
from tui.screens.console import ConsoleScreen, ConsoleTarget

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
TARGETS = [ConsoleTarget("i-web-1", "web-1"), ConsoleTarget("i-db-1", "db-1")]


def make_app() -> tuple[ConsoleScreenApp, FakeGuests]:
    guests = FakeGuests({"i-web-1": coloured_session(), "i-db-1": b"db-1 login: "})
    return ConsoleScreenApp(guests, TARGETS), guests


async def _all_settled(pilot: Pilot[Any]) -> ConsoleScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ConsoleScreen)
    await wait_for(pilot, lambda: all(c.bytes_received for c in screen.consoles))
    await settle(pilot, *screen.consoles)
    return screen


@pytest.mark.parametrize("size", SIZES)
def test_console_shows_a_coloured_shell_session(snap_compare: Any, size: tuple[int, int]) -> None:
    app, _ = make_app()
    assert snap_compare(app, terminal_size=size, run_before=_all_settled)


@pytest.mark.parametrize("size", SIZES)
def test_console_shows_a_full_screen_program(snap_compare: Any, size: tuple[int, int]) -> None:
    app, guests = make_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await _all_settled(pilot)
        console = screen.active_console
        assert console is not None
        columns, lines = console.terminal_size
        guests.current("i-web-1").feed(full_screen_program(columns, lines))
        await wait_for(pilot, lambda: console.screen_lines[0].startswith(" top - 12:00:00"))
        await settle(pilot, console)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_console_footer_shows_the_chord_after_ctrl_bracket(
    snap_compare: Any, size: tuple[int, int]
) -> None:
    app, _ = make_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await _all_settled(pilot)
        console = screen.active_console
        assert console is not None
        console.chord_timeout = 60  # keep the chord armed while the screenshot is taken
        await pilot.press("ctrl+right_square_bracket")

    assert snap_compare(app, terminal_size=size, run_before=run_before)
