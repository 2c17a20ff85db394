"""The pure parts of the console: pyte model (fast draw, scrollback, alternate screen, line
drawing, replies), colour mapping and key encoding."""

from __future__ import annotations

import random

import pyte
import pytest
from rich.color import Color

from tui.widgets.terminal_screen import (
    ScrollbackScreen,
    TerminalModel,
    XtermByteStream,
    history_to_strip,
    pyte_color,
)
from tui.widgets.vt_keys import encode_key

PIECES = [
    "hello", "x" * 100, "\r\n", "\n", "\x1b[31m", "\x1b[1;44m", "\x1b[0m", "\x1b[5;10H", "\x1b[K",
    "\x1b[2J", "\x1b[4h", "\x1b[4l", "\x1b[?7l", "\x1b[?7h", "é", "漢字", "\t", "\x08",
    "\x1b[38;5;200mZ", "abc def ghi " * 7, "\x1b[10;20r", "\x1b[r", "\x1bM", "\x1b[3L",
]


@pytest.mark.parametrize("seed", range(40))
def test_fast_draw_path_matches_pyte_cell_for_cell(seed: int) -> None:
    """ScrollbackScreen's ASCII fast path must leave exactly the buffer pyte.Screen leaves."""
    rng = random.Random(seed)
    data = "".join(rng.choice(PIECES) for _ in range(200)).encode()
    cut = rng.randrange(len(data))
    ours, theirs = ScrollbackScreen(37, 11), pyte.Screen(37, 11)
    for screen in (ours, theirs):
        stream = pyte.ByteStream(screen)
        stream.feed(data[:cut])
        stream.feed(data[cut:])
    assert (ours.cursor.x, ours.cursor.y) == (theirs.cursor.x, theirs.cursor.y)
    for y in range(11):
        for x in range(37):
            assert ours.buffer[y][x] == theirs.buffer[y][x], (seed, x, y)


def test_lines_scrolled_off_go_to_history_and_render() -> None:
    model = TerminalModel(20, 3)
    model.feed(b"".join(b"\x1b[32mline %d\x1b[0m\r\n" % i for i in range(10)))
    frame = model.frame
    assert frame.history_serial == 8
    assert [h[0] for h in frame.history] == list(range(1, 9))
    strip = history_to_strip(frame.history[0], frame.attr_table, 20)
    assert strip.text == "line 0".ljust(20)
    assert next(iter(strip)).style.color == Color.parse("green")


def test_vt100_line_drawing_is_honoured_under_utf8() -> None:
    model = TerminalModel(10, 2)
    model.feed(b"\x1b(0lqk\x1b(B ok \xe2\x94\x80")
    assert model.frame.text_lines()[0] == "┌─┐ ok ─".ljust(10)


def test_alternate_screen_keeps_the_shell_screen_and_history_clean() -> None:
    model = TerminalModel(20, 3)
    model.feed(b"$ vi\r\n\x1b[?1049h\x1b[2J\x1b[Hfile\r\n~\r\n~\r\n~\r\n~")
    assert model.frame.text_lines()[0].startswith("~")
    assert model.frame.history_serial == 0
    model.feed(b"\x1b[?1049l")
    assert model.frame.text_lines()[0].startswith("$ vi")


def test_cursor_position_query_is_answered() -> None:
    model = TerminalModel(20, 5)
    result = model.feed(b"ab\x1b[6n")
    assert result.replies == ["\x1b[1;3R"]


def test_shrinking_keeps_the_prompt_at_the_top() -> None:
    model = TerminalModel(20, 10)
    model.feed(b"login: ")
    model.resize(20, 4)
    assert model.frame.text_lines()[0].startswith("login: ")


def test_feed_budget_stops_early_and_reports_consumed() -> None:
    model = TerminalModel(80, 24)
    data = b"x" * 80 * 5000
    result = model.feed(data, budget=0.0)
    assert 0 < result.consumed < len(data)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default", None),
        ("red", Color.parse("red")),
        ("brown", Color.parse("yellow")),
        ("brightbrown", Color.parse("bright_yellow")),
        ("bfightmagenta", Color.parse("bright_magenta")),
        ("ff8700", Color.parse("#ff8700")),
        ("zzzzzz", None),
    ],
)
def test_pyte_colour_names_map_to_rich(name: str, expected: Color | None) -> None:
    assert pyte_color(name) == expected


@pytest.mark.parametrize(
    ("key", "character", "app", "expected"),
    [
        ("a", "a", False, b"a"),
        ("A", "A", False, b"A"),
        ("é", "é", False, "é".encode()),
        ("enter", "\r", False, b"\r"),
        ("backspace", "\x7f", False, b"\x7f"),
        ("ctrl+c", "\x03", False, b"\x03"),
        ("ctrl+backslash", "\x1c", False, b"\x1c"),
        ("up", None, False, b"\x1b[A"),
        ("up", None, True, b"\x1bOA"),
        ("home", None, True, b"\x1bOH"),
        ("shift+right", None, True, b"\x1b[1;2C"),
        ("ctrl+delete", None, False, b"\x1b[3;5~"),
        ("f4", None, False, b"\x1bOP"[:-1] + b"S"),
        ("f11", None, False, b"\x1b[23~"),
        ("alt+x", None, False, b"\x1bx"),
        ("shift+tab", None, False, b"\x1b[Z"),
    ],
)
def test_keys_encode_like_xterm(key: str, character: str | None, app: bool, expected: bytes) -> None:
    assert encode_key(key, character, app_cursor_keys=app) == expected
