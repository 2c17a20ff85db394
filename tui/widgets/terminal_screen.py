"""The terminal behind a serial console: pyte parsing plus immutable frames for the UI.

Why this module exists apart from the widget: the parse must run off the UI path. Everything
here is plain Python with no Textual import except `Strip` (an immutable value), so a worker
thread can own the pyte screen while the event loop only ever sees finished `TerminalFrame`s.

Ownership rule: a `TerminalModel` is driven by one thread at a time (the widget uses a
single-thread executor); its lock makes any other caller safe too. The UI reads only the
frames it is handed, never the pyte screen, so a long parse batch never blocks a repaint.

Why not `pyte.HistoryScreen`: it wraps every attribute access in a Python-level
`__getattribute__`, which measured 0.13 MB/s here against 0.48 MB/s for `pyte.Screen` — below
the 200 KB/s the console must sustain. `ScrollbackScreen` keeps the same idea (lines that
scroll off the top go to a bounded history deque) in an `index()` override, and the scrollback
*view* is done by the widget over frames, so a guest that keeps printing does not yank the
reader back to the bottom the way `HistoryScreen.prev_page` does.
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from dataclasses import dataclass, field
from itertools import groupby, repeat
from operator import itemgetter
from time import perf_counter
from typing import Any, Iterable

import pyte
from pyte import modes as mo
from pyte.screens import Char, Margins
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

# Private modes as pyte stores them (shifted by 5 bits to keep them apart from ANSI modes).
_ALT_SCREEN_MODES = frozenset(m << 5 for m in (47, 1047, 1049))
_SAVE_CURSOR_MODE = 1048 << 5
#: DECCKM: the guest asked for "application" cursor keys (ESC O A instead of ESC [ A).
APP_CURSOR_KEYS = 1 << 5  # pyte has no constant for it, but stores every private mode it sees

#: xterm bracketed paste (ESC [?2004h): wrap pasted text so shells do not run it line by line.
BRACKETED_PASTE = 2004 << 5

_ANSI_NAMES = {
    "black": "black",
    "red": "red",
    "green": "green",
    "brown": "yellow",  # pyte keeps the VT100 name for colour 3
    "yellow": "yellow",
    "blue": "blue",
    "magenta": "magenta",
    "cyan": "cyan",
    "white": "white",
}


def pyte_color(name: str) -> Color | None:
    """Translate a pyte colour name to a Rich `Color` (None means the widget's own colour).

    pyte names the 16 ANSI colours ("red", "brightbrown", and once "bfightmagenta", a typo in
    pyte's background table) and gives 256-colour and truecolour values as "rrggbb" hex.
    """
    if name == "default" or not name:
        return None
    base = _ANSI_NAMES.get(name)
    if base is not None:
        return Color.parse(base)
    if name.startswith(("bright", "bfight")):
        base = _ANSI_NAMES.get(name[6:])
        if base is not None:
            return Color.parse(f"bright_{base}")
    if len(name) == 6:
        try:
            return Color.parse(f"#{name}")
        except Exception:  # noqa: BLE001 - a garbage colour renders as default, never crashes
            return None
    return None


_style_cache: dict[tuple[Any, ...], Style] = {}


def char_style(attrs: tuple[Any, ...]) -> Style:
    """The Rich style for pyte attributes (fg, bg, bold, italics, underscore, strike, reverse,
    blink), cached: a screen uses a handful of distinct styles, the flood path must not
    rebuild them per cell."""
    style = _style_cache.get(attrs)
    if style is None:
        fg, bg, bold, italics, underscore, strikethrough, reverse, blink = attrs
        style = Style(
            color=pyte_color(fg),
            bgcolor=pyte_color(bg),
            bold=bold or None,
            italic=italics or None,
            underline=underscore or None,
            strike=strikethrough or None,
            reverse=reverse or None,
            blink=blink or None,
        )
        if len(_style_cache) > 4096:  # a guest cycling truecolours must not grow us forever
            _style_cache.clear()
        _style_cache[attrs] = style
    return style


#: A line as runs of equal attributes: ((text, (fg, bg, bold, italics, underscore,
#: strikethrough, reverse, blink)), ...).
Runs = tuple[tuple[str, tuple[Any, ...]], ...]
#: A scrollback line: (serial, text of each cell, attribute id of each cell).
HistoryLine = tuple[int, tuple[str, ...], "array[int]"]


_ATTRS = itemgetter(1, 2, 3, 4, 5, 6, 7, 8)
_DATA = itemgetter(0)


def line_runs(line: dict[int, Char], columns: int, default: Char) -> Runs:
    """Group one pyte buffer line into runs of cells with equal attributes.

    A wide character occupies its cell plus a stub cell whose data is "" (pyte's convention),
    so joined run text has the right cell width. The per-cell work is all in C (map, groupby,
    itemgetter): this runs for every line that scrolls off during a flood.
    """
    cells = map(line.get, range(columns), repeat(default, columns))
    return tuple(("".join(map(_DATA, group)), attrs) for attrs, group in groupby(cells, _ATTRS))


def history_to_strip(line: HistoryLine, attr_table: list[tuple[Any, ...]], columns: int) -> Strip:
    """A Strip of exactly `columns` cells for one scrollback line (rendered only when seen)."""
    _serial, texts, ids = line
    segments: list[Segment] = []
    for attr_id, group in groupby(zip(ids, texts), _FIRST):
        segments.append(Segment("".join(map(_SECOND, group)), char_style(attr_table[attr_id])))
    strip = Strip(segments)
    return strip if strip.cell_length == columns else strip.crop_extend(0, columns, None)


_FIRST = itemgetter(0)
_SECOND = itemgetter(1)


def line_to_strip(line: dict[int, Char], columns: int, default: Char) -> Strip:
    """Convert one pyte buffer line into a Strip of exactly `columns` cells."""
    return Strip(
        [Segment(text, char_style(attrs)) for text, attrs in line_runs(line, columns, default)],
        columns,
    )


class _GlyphCache(dict):
    """char → Char for one set of attributes: printable ASCII repeats, so reuse the tuples."""

    __slots__ = ("rest",)

    def __init__(self, rest: tuple[Any, ...]) -> None:
        super().__init__()
        self.rest = rest

    def __missing__(self, key: str) -> Char:
        value = Char._make((key, *self.rest))
        self[key] = value
        return value


class ScrollbackScreen(pyte.Screen):
    """A pyte screen with scrollback, an alternate screen, and answers to terminal queries.

    - Lines scrolled off the top of a full-height scroll region go to `history` (bounded), each
      tagged with a serial number so the UI can cache their rendering.
    - Private modes 47/1047/1049 switch to an alternate screen, so a full-screen program (vi,
      top, less) leaves the shell's screen as it was, and its redraws never fill scrollback.
    - Device status / attribute queries are answered through `replies` (sent back to the guest).
    - `draw()` has a fast path for runs of printable ASCII in replace + autowrap mode (what a
      flooding guest prints); anything else goes through pyte's per-character path.
    """

    def __init__(self, columns: int, lines: int, history: int = 10_000) -> None:
        self.history: deque[HistoryLine] = deque(maxlen=history)
        #: Attribute tuples by id, shared with the UI (append-only, so safe to read anywhere).
        self.attr_table: list[tuple[Any, ...]] = [tuple(Char(" ")[1:])]
        self.attr_ids: dict[tuple[Any, ...], int] = {self.attr_table[0]: 0}
        self.history_serial = 0
        self.replies: list[str] = []
        self._alternate: dict[int, Any] | None = None
        self._glyphs: dict[Char, _GlyphCache] = {}
        super().__init__(columns, lines)

    # -- scrollback -----------------------------------------------------------------------
    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and self._alternate is None:
            self._push_history(self.buffer[top])
        super().index()

    def _push_history(self, line: dict[int, Char]) -> None:
        """Keep a line that scrolled off as (serial, cell texts, attribute ids).

        Why this shape: pyte's Chars are namedtuples, which the cyclic GC never untracks, and
        10,000 scrollback lines of them made full collections take 100+ ms — a UI stall. A
        tuple of str plus an array of small ints is invisible to the GC. Why not grouped runs:
        grouping every line that scrolls off cost more than parsing it. All work here is in C.
        """
        self.history_serial += 1
        cells = tuple(map(line.get, range(self.columns), repeat(self.default_char)))
        texts = tuple(map(_DATA, cells))
        ids = array("H", map(self._attr_id, map(_ATTRS, cells)))
        self.history.append((self.history_serial, texts, ids))

    def _attr_id(self, attrs: tuple[Any, ...]) -> int:
        """Small int for an attribute tuple (0 = default); interned for the screen's lifetime."""
        known = self.attr_ids.get(attrs)
        if known is None:
            if len(self.attr_table) >= 0xFFFF:
                return 0  # a guest cycling 65k truecolours: older colours degrade to default
            known = self.attr_ids[attrs] = len(self.attr_table)
            self.attr_table.append(attrs)
        return known

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        super().erase_in_display(how, *args, **kwargs)
        if how == 3:  # "clear scrollback" (xterm)
            self.history.clear()

    def reset(self) -> None:
        super().reset()
        self.history.clear()
        self._alternate = None

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Resize like xterm: when the screen gets shorter, blank lines under the cursor go
        first and only then do top lines scroll off (into history). pyte would drop the top
        lines, which loses a shell prompt sitting at the top of a fresh console."""
        lines = lines or self.lines
        columns = columns or self.columns
        if (lines, columns) == (self.lines, self.columns):
            return
        if lines < self.lines:
            drop = max(0, self.cursor.y - (lines - 1))
            if drop and self._alternate is None:
                for y in range(drop):
                    self._push_history(self.buffer[y])
            kept = {y - drop: line for y, line in self.buffer.items() if drop <= y < drop + lines}
            self.buffer.clear()
            self.buffer.update(kept)
            self.cursor.y -= drop
            self.lines = lines
        super().resize(lines=lines, columns=columns)
        self.set_margins()
        self.dirty.update(range(self.lines))

    # -- alternate screen -----------------------------------------------------------------
    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            shifted = {m << 5 for m in modes}
            if shifted & _ALT_SCREEN_MODES and self._alternate is None:
                self._alternate = dict(self.buffer)
                if (1049 << 5) in shifted:
                    self.save_cursor()
                self.buffer.clear()
                self.dirty.update(range(self.lines))
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            shifted = {m << 5 for m in modes}
            if shifted & _ALT_SCREEN_MODES and self._alternate is not None:
                saved = self._alternate
                self._alternate = None
                self.buffer.clear()
                self.buffer.update(saved)
                if (1049 << 5) in shifted:
                    self.restore_cursor()
                self.dirty.update(range(self.lines))
        super().reset_mode(*modes, **kwargs)

    # -- replies to the guest -------------------------------------------------------------
    def write_process_input(self, data: str) -> None:
        self.replies.append(data)

    # -- fast text path -------------------------------------------------------------------
    def draw(self, data: str) -> None:
        mode = self.mode
        if mo.IRM in mode or mo.DECAWM not in mode or not (data.isascii() and data.isprintable()):
            super().draw(data)
            return
        cursor = self.cursor
        columns = self.columns
        if cursor.x > columns:
            super().draw(data)
            return
        data = data.translate(self.g1_charset if self.charset else self.g0_charset)
        attrs = cursor.attrs
        glyphs = self._glyphs.get(attrs)
        if glyphs is None:
            if len(self._glyphs) > 256:
                self._glyphs.clear()
            glyphs = self._glyphs[attrs] = _GlyphCache(tuple(attrs[1:]))
        glyph = glyphs.__getitem__
        i, n = 0, len(data)
        while i < n:
            if cursor.x == columns:
                self.dirty.add(cursor.y)
                self.carriage_return()
                self.linefeed()
            x = cursor.x
            take = min(n - i, columns - x)
            self.buffer[cursor.y].update(zip(range(x, x + take), map(glyph, data[i : i + take])))
            cursor.x = x + take
            i += take
        self.dirty.add(cursor.y)


class XtermByteStream(pyte.ByteStream):
    """A byte stream that decodes UTF-8 yet honours VT100 charset designation like xterm.

    pyte ignores ESC ( 0 and SI/SO whenever it decodes UTF-8 (following an old recommendation
    for UTF-8 terminals), but ncurses programs on a serial console (TERM=vt100/vt220/linux)
    draw their boxes exactly that way, and xterm honours it. So the parser always runs in
    "charset" mode while decoding stays UTF-8 (unless the guest selects ESC % @).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decode_utf8 = True
        self.use_utf8 = False  # the parser reads this: False = honour ESC ( 0 and SI/SO

    def feed(self, data: bytes) -> None:  # type: ignore[override]
        text = self.utf8_decoder.decode(data) if self.decode_utf8 else data.decode("latin-1")
        pyte.Stream.feed(self, text)

    def select_other_charset(self, code: str) -> None:
        if code == "@":
            self.decode_utf8 = False
            self.utf8_decoder.reset()
        elif code in "G8":
            self.decode_utf8 = True


@dataclass(frozen=True, slots=True)
class TerminalFrame:
    """What the UI draws: an immutable picture of the terminal at one moment.

    `rows` are Strips of raw guest styles (the widget adds its base style); a row's Strip
    object is reused across frames while the line is unchanged, so `is` tells the UI which
    rows to repaint. `history` holds immutable HistoryLines, rendered lazily by the UI with
    `history_to_strip(line, attr_table, columns)`.
    """

    columns: int
    lines: int
    rows: tuple[Strip, ...]
    cursor_x: int
    cursor_y: int
    cursor_visible: bool
    app_cursor_keys: bool
    bracketed_paste: bool = False
    history: tuple[HistoryLine, ...] = ()
    history_serial: int = 0
    attr_table: list[tuple[Any, ...]] = field(default_factory=list)
    title: str = ""
    generation: int = 0

    def text_lines(self) -> list[str]:
        """The screen as plain text, one string per row (for tests and debugging)."""
        return [row.text for row in self.rows]


@dataclass
class FeedResult:
    """Outcome of one bounded feed: how much was parsed, the new frame, replies for the guest."""

    consumed: int
    frame: TerminalFrame
    replies: list[str] = field(default_factory=list)


class TerminalModel:
    """A pyte screen + byte stream that turns guest bytes into `TerminalFrame`s.

    Every method is safe to call from a worker thread; the lock serialises them. None of them
    touches Textual, so the event loop never waits on a parse.
    """

    #: Feed in slices this big so a time budget can end a batch early.
    SLICE = 4096

    def __init__(self, columns: int = 80, lines: int = 24, history: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.screen = ScrollbackScreen(columns, lines, history=history)
        self.stream = XtermByteStream(self.screen)
        self._rows: list[Strip] = []
        self._history_snapshot: tuple[HistoryLine, ...] = ()
        self._history_snapshot_serial = -1
        self._generation = 0
        with self._lock:
            self.screen.dirty.update(range(lines))
            self._frame = self._publish()

    @property
    def frame(self) -> TerminalFrame:
        """The most recently published frame."""
        return self._frame

    def feed(self, data: bytes, budget: float | None = None) -> FeedResult:
        """Parse up to all of `data`, stopping early (at a slice boundary) once `budget` seconds
        have passed, so one call never holds the worker for long. Returns how much it used."""
        with self._lock:
            deadline = None if budget is None else perf_counter() + budget
            consumed = 0
            size = len(data)
            view = memoryview(data)
            while consumed < size:
                chunk = view[consumed : consumed + self.SLICE]
                self.stream.feed(bytes(chunk))
                consumed += len(chunk)
                if deadline is not None and perf_counter() >= deadline:
                    break
            replies, self.screen.replies = self.screen.replies, []
            self._frame = self._publish()
            return FeedResult(consumed, self._frame, replies)

    def resize(self, columns: int, lines: int) -> TerminalFrame:
        """Resize the pyte screen (the widget calls this when its own size changes)."""
        with self._lock:
            columns, lines = max(1, columns), max(1, lines)
            if (columns, lines) != (self.screen.columns, self.screen.lines):
                self.screen.resize(lines=lines, columns=columns)
                self.screen.cursor.x = min(self.screen.cursor.x, columns)
                self.screen.cursor.y = min(self.screen.cursor.y, lines - 1)
                self.screen.dirty.update(range(lines))
            self._frame = self._publish()
            return self._frame

    def _publish(self) -> TerminalFrame:
        """Copy dirty lines into Strips and build a frame (caller holds the lock)."""
        screen = self.screen
        columns, lines = screen.columns, screen.lines
        rows = self._rows
        if len(rows) != lines or (rows and rows[0].cell_length != columns):
            rows[:] = [Strip.blank(columns)] * lines
            dirty: Iterable[int] = range(lines)
        else:
            dirty = screen.dirty
        default = screen.default_char
        buffer = screen.buffer
        for y in dirty:
            if 0 <= y < lines:
                rows[y] = line_to_strip(buffer[y], columns, default)
        screen.dirty.clear()
        if screen.history_serial != self._history_snapshot_serial or len(screen.history) != len(
            self._history_snapshot
        ):
            self._history_snapshot = tuple(screen.history)
            self._history_snapshot_serial = screen.history_serial
        self._generation += 1
        cursor = screen.cursor
        return TerminalFrame(
            columns=columns,
            lines=lines,
            rows=tuple(rows),
            cursor_x=min(cursor.x, columns - 1),
            cursor_y=min(cursor.y, lines - 1),
            cursor_visible=not cursor.hidden and mo.DECTCEM in screen.mode,
            app_cursor_keys=APP_CURSOR_KEYS in screen.mode,
            bracketed_paste=BRACKETED_PASTE in screen.mode,
            history=self._history_snapshot,
            history_serial=screen.history_serial,
            attr_table=screen.attr_table,
            title=getattr(screen, "title", ""),
            generation=self._generation,
        )
