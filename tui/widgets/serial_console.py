"""SerialConsole: a live guest serial console — a real terminal emulator in a Textual widget.

How the bytes flow, and why:

    transport.read()  ──►  inbox (bytearray, bounded)  ──►  TerminalModel.feed() in a
    (reader worker)         backpressure: stop reading     single-thread executor, ≤ 64 KiB
                            at HIGH_WATER unparsed          and ≤ FEED_BUDGET seconds a call
                                                                   │ immutable TerminalFrame
    render_line(y) ◄── refresh(changed rows) ◄── ticker (≤ MAX_FPS) ◄┘ (latest frame wins)

- The pyte parse never runs on the event loop, so a guest flooding its console cannot stall
  the UI; each executor call is time-bounded so frames keep coming during a flood.
- Frames are coalesced: whatever arrived since the last tick is drawn once; rows whose Strip
  object did not change are not repainted (pyte's dirty set decides which Strips are rebuilt).
- Typing stays close to the wire: after a quiet frame, a small chunk (an echoed key) is parsed
  on the loop and its frame applied at once, without the executor and ticker hops
  (INLINE_BYTES; tests/bench/bench_console.py measures keystroke → echo against a raw client).
  The changed rows then go to the compositor in that same step when nothing else waits to be
  drawn (`_paint_rows`), and a key for a focused console skips the app's and the widget's
  queues (`take_key`, called from the app's `post_message`).
- Every key goes to the guest, including the ones the app binds (ctrl+q, ctrl+c, ctrl+p, tab):
  `check_consume_key` tells Textual this widget consumes them. The one exception is the escape
  chord Ctrl+]: then `n`/`p` post NextConsole/PreviousConsole, Ctrl+] again sends a literal ^],
  any other key (or a pause of `chord_timeout`) posts Detach.
- Scrollback: Shift+PgUp/PgDn and the mouse wheel move a view over the scrollback kept by the
  model; new output while scrolled up keeps the view where it is; typing returns to the bottom.
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

from tui.widgets.console_transport import ConsoleTransport, LinkState
from tui.widgets.terminal_screen import HistoryLine, TerminalFrame, TerminalModel, history_to_strip
from tui.widgets.vt_keys import encode_key

#: Key names Textual may use for Ctrl+] (legacy parsing, kitty protocol).
DETACH_KEYS = frozenset({"ctrl+right_square_bracket", "ctrl+]"})


class SerialConsole(Widget, can_focus=True):
    """A terminal emulator bound to one guest's serial console transport."""

    DEFAULT_CSS = """
    SerialConsole {
        width: 1fr;
        height: 1fr;
        background: $background;
        color: $foreground;
        overflow: hidden hidden;
    }
    """

    #: Most bytes handed to one executor call.
    BATCH_BYTES = 64 * 1024
    #: Longest one executor call may parse before handing a frame back (seconds).
    FEED_BUDGET = 0.025
    #: Unparsed bytes at which we stop reading the transport (backpressure to the daemon).
    HIGH_WATER = 1024 * 1024
    #: Repaints per second at most.
    MAX_FPS = 60
    #: Guest output up to this size that arrives while nothing is waiting to be parsed and
    #: nothing was drawn for a frame (an echoed keystroke, a prompt) is parsed on the event
    #: loop (tens of µs) and drawn at once: two thread hops and a timer tick less on every
    #: echo. Anything bigger, behind other output, or within a frame of the last one (a flood
    #: of small chunks) takes the executor path above, so a flood never parses on the loop.
    INLINE_BYTES = 256
    #: A frame changing at most this many rows (an echoed key: its row, maybe the cursor's
    #: old row) is painted in the step that parsed it (`_paint_rows`); bigger changes (a
    #: flood's frames) keep Textual's timer, which coalesces them with any other repaint.
    PAINT_NOW_ROWS = 2
    #: On the first console mount, move everything alive (modules, the app, its screens) into
    #: the GC's permanent generation. Why: during a flood a full collection of a Textual app's
    #: heap measured 60-150 ms on this 2-core host — a UI stall — and ~32 ms max with the
    #: freeze (tests/bench/bench_console.py). Once per process; set False to opt out.
    FREEZE_GC = True
    _gc_frozen = False

    link_state: reactive[LinkState] = reactive(LinkState.CONNECTING)
    """Where the link to the guest is (shown by the console screen's header)."""
    chord_armed: reactive[bool] = reactive(False)
    """True between Ctrl+] and the key that completes the chord."""
    scrollback: reactive[int] = reactive(0, repaint=False)
    """How many lines the view is scrolled up into history (0 = live)."""
    terminal_size: reactive[tuple[int, int]] = reactive((80, 24), repaint=False)
    """(columns, lines) of the emulated terminal, for the header (guests need `stty` to match)."""

    # -- messages ---------------------------------------------------------------------------
    class _ConsoleMessage(Message):
        def __init__(self, console: SerialConsole) -> None:
            super().__init__()
            self.console = console

        @property
        def control(self) -> SerialConsole:
            return self.console

    class Detach(_ConsoleMessage):
        """The user pressed the escape chord: give the keyboard back to the TUI."""

    class NextConsole(_ConsoleMessage):
        """Ctrl+] n: switch to the next open console."""

    class PreviousConsole(_ConsoleMessage):
        """Ctrl+] p: switch to the previous open console."""

    class Connected(_ConsoleMessage):
        """The link to the guest is up (again)."""

    class Disconnected(_ConsoleMessage):
        """The link went down; `reconnecting` says whether it will come back by itself."""

        def __init__(self, console: SerialConsole, reason: str, reconnecting: bool) -> None:
            super().__init__(console)
            self.reason = reason
            self.reconnecting = reconnecting

    # -- construction -----------------------------------------------------------------------
    def __init__(
        self,
        transport: ConsoleTransport,
        *,
        history: int = 10_000,
        chord_timeout: float = 0.6,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's spelling
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.transport = transport
        self.chord_timeout = chord_timeout
        self._model = TerminalModel(80, 24, history=history)
        self._frame: TerminalFrame = self._model.frame
        self._pending_frame: TerminalFrame | None = None
        self._pending_parsed = 0
        self._executor: ThreadPoolExecutor | None = None
        self._inbox = bytearray()
        self._data_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._feeding = False
        self._last_apply = 0.0
        self._ticker: Timer | None = None
        self._chord_timer: Timer | None = None
        self._line_cache: dict[int, tuple[Any, ...]] = {}
        self._history_cache: dict[int, Strip] = {}
        self._base_style: tuple[tuple[tuple[int, int], ...], Style] | None = None
        self._link_reason = ""
        #: Bytes read from the transport / parsed / shown on screen (for status and benches).
        self.bytes_received = 0
        self.bytes_parsed = 0
        self.bytes_rendered = 0

    # -- public API -----------------------------------------------------------------------
    @property
    def frame(self) -> TerminalFrame:
        """The frame currently on screen."""
        return self._frame

    @property
    def screen_lines(self) -> list[str]:
        """The live terminal screen as plain text rows (what the guest drew)."""
        return self._frame.text_lines()

    @property
    def idle(self) -> bool:
        """True when every received byte is parsed and on screen."""
        return (
            not self._inbox
            and not self._feeding
            and self._pending_frame is None
            and self.bytes_rendered == self.bytes_received
        )

    @property
    def status_text(self) -> str:
        """One line for a header: 'serial · 80×24 · connected'."""
        frame = self._frame
        state = str(self.link_state)
        if self.link_state in (LinkState.RECONNECTING, LinkState.CONNECTING):
            state = f"{state}…"
        if self.scrollback:
            state += f" · scrollback −{self.scrollback}"
        return f"serial · {frame.columns}×{frame.lines} · {state}"

    def send(self, data: bytes) -> None:
        """Queue bytes for the guest (keys use this; order is preserved)."""
        if data:
            self._outbox.put_nowait(data)

    def scroll_history(self, lines: int) -> None:
        """Scroll the view `lines` up (positive) or down (negative) through scrollback."""
        limit = len(self._frame.history)
        self.scrollback = max(0, min(limit, self.scrollback + lines))

    # -- lifecycle --------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.FREEZE_GC and not SerialConsole._gc_frozen:
            SerialConsole._gc_frozen = True
            gc.freeze()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serial-console")
        self._ticker = self.set_interval(1 / self.MAX_FPS, self._tick, pause=True)
        subscribe = getattr(self.transport, "subscribe", None)
        if callable(subscribe):
            subscribe(self._on_link_state)
        else:
            self._on_link_state(LinkState.CONNECTED, "")
        self.run_worker(self._read_loop(), name="serial-read", group="serial-io")
        self.run_worker(self._feed_loop(), name="serial-feed", group="serial-io")
        self.run_worker(self._write_loop(), name="serial-write", group="serial-io")

    async def on_unmount(self) -> None:
        self.workers.cancel_group(self, "serial-io")
        close = getattr(self.transport, "close", None)
        if callable(close):
            try:
                await close()
            except (OSError, ConnectionError):
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- link state -------------------------------------------------------------------------
    def _on_link_state(self, state: LinkState, detail: str) -> None:
        previous = self.link_state
        self.link_state = state
        self._link_reason = detail
        if state == LinkState.CONNECTED and previous != LinkState.CONNECTED:
            self.post_message(self.Connected(self))
        elif state == LinkState.RECONNECTING and previous != LinkState.RECONNECTING:
            self.post_message(self.Disconnected(self, detail, reconnecting=True))
        elif state == LinkState.CLOSED and previous != LinkState.CLOSED:
            self.post_message(self.Disconnected(self, detail, reconnecting=False))

    # -- I/O workers (asyncio tasks on the event loop; they only await) --------------------
    async def _read_loop(self) -> None:
        reason = "stream ended"
        try:
            while True:
                try:
                    data = await self.transport.read()
                except (OSError, ConnectionError) as error:
                    data, reason = b"", f"{type(error).__name__}: {error}"
                if not data:
                    break
                self.bytes_received += len(data)
                if (len(data) <= self.INLINE_BYTES and not self._inbox and not self._feeding
                        and monotonic() - self._last_apply >= 1 / self.MAX_FPS):
                    self._feed_inline(data)
                    continue
                self._inbox += data
                self._data_ready.set()
                if len(self._inbox) >= self.HIGH_WATER:
                    self._room.clear()
                    await self._room.wait()
        finally:
            if not callable(getattr(self.transport, "subscribe", None)):
                self._on_link_state(LinkState.CLOSED, reason)

    async def _feed_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._data_ready.wait()
            if not self._inbox:
                self._data_ready.clear()
                continue
            chunk = bytes(self._inbox[: self.BATCH_BYTES])
            self._feeding = True
            try:
                result = await loop.run_in_executor(
                    self._executor, self._model.feed, chunk, self.FEED_BUDGET
                )
            finally:
                self._feeding = False
            del self._inbox[: result.consumed]
            self.bytes_parsed += result.consumed
            if len(self._inbox) < self.HIGH_WATER:
                self._room.set()
            if not self._inbox:
                self._data_ready.clear()
            self._offer_frame(result.frame)
            for reply in result.replies:
                self.send(reply.encode())

    def _feed_inline(self, data: bytes) -> None:
        """Parse a small chunk here on the loop (see INLINE_BYTES); the model's lock makes a
        resize running in the executor wait its turn, briefly."""
        result = self._model.feed(data, self.FEED_BUDGET)
        self.bytes_parsed += result.consumed
        if result.consumed < len(data):
            self._inbox += data[result.consumed :]
            self._data_ready.set()
        self._offer_frame(result.frame)
        for reply in result.replies:
            self.send(reply.encode())

    async def _write_loop(self) -> None:
        while True:
            data = await self._outbox.get()
            try:
                await self.transport.write(data)
            except (OSError, ConnectionError):
                pass  # link down: the read side reports it; keys typed meanwhile are lost

    async def _resize_model(self, columns: int, lines: int) -> None:
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(self._executor, self._model.resize, columns, lines)
        self._offer_frame(frame)

    # -- frames → screen --------------------------------------------------------------------
    def _offer_frame(self, frame: TerminalFrame) -> None:
        """Keep only the newest frame; the ticker draws it at the next frame boundary."""
        if self._pending_frame is None or frame.generation > self._pending_frame.generation:
            self._pending_frame = frame
            self._pending_parsed = self.bytes_parsed
        if monotonic() - self._last_apply >= 1 / self.MAX_FPS:
            self._apply_frame()  # quiet until now: draw at once (a burst coalesces below)
        elif self._ticker is not None:
            self._ticker.resume()

    def _tick(self) -> None:
        """The ticker's beat; skipped when a frame was applied directly moments ago, so direct
        and ticked frames together stay within MAX_FPS."""
        if self._pending_frame is not None and monotonic() - self._last_apply < 0.9 / self.MAX_FPS:
            return
        self._apply_frame()

    def _apply_frame(self) -> None:
        frame = self._pending_frame
        if frame is None:
            if self._ticker is not None:
                self._ticker.pause()
            return
        self._pending_frame = None
        self._last_apply = monotonic()
        old = self._frame
        self._frame = frame
        self.bytes_rendered = self._pending_parsed
        self.terminal_size = (frame.columns, frame.lines)
        if self.scrollback:
            grown = frame.history_serial - old.history_serial
            self.scrollback = max(0, min(len(frame.history), self.scrollback + grown))
            self.refresh()
            return
        if (old.columns, old.lines) != (frame.columns, frame.lines):
            self.refresh()
            return
        width = self.size.width
        changed = {y for y in range(frame.lines) if old.rows[y] is not frame.rows[y]}
        if (old.cursor_x, old.cursor_y, old.cursor_visible) != (
            frame.cursor_x,
            frame.cursor_y,
            frame.cursor_visible,
        ):
            changed.update((old.cursor_y, frame.cursor_y))
        if len(changed) > frame.lines // 2:
            self.refresh()
        elif 0 < len(changed) <= self.PAINT_NOW_ROWS:
            self._paint_rows([Region(0, y, width, 1) for y in changed])
        else:
            for y in changed:
                self.refresh(Region(0, y, width, 1))

    def _paint_rows(self, regions: list[Region]) -> None:
        """Repaint these rows now when nothing else waits to be drawn; else `refresh` them.

        Why: `refresh` reaches the terminal through three hops — this widget's idle, an Update
        message to the screen, the screen's idle and update timer — and clears the widget's
        style caches on the way (for a change of CSS, which a new row is not): together
        ~0.3 ms of a keystroke → echo (tests/bench/bench_console.py). Here the rows go to the
        screen's compositor at once, exactly as the timer would send them. Only when the
        screen is on top and has nothing else pending (no layout, no scroll, no other dirty
        widget, no batch, no `call_after_refresh` callback — those run after a timer paint,
        and a screen's auto-focus is one): then this is all the next frame would have done.
        The calls are Textual internals (8.x); if they move, the plain `refresh` takes over."""
        try:
            screen = self.screen
            app = self.app
            compositor = screen._compositor
            paint_now = (
                screen is app.screen
                and not app._batch_count
                and not app.is_inline
                and not (screen._layout_required or screen._scroll_required
                         or screen._repaint_required or screen._recompose_required
                         or screen._dirty_widgets)
                and not screen._callbacks  # call_after_refresh work runs after a timer paint
                and not self._repaint_required
                and self in compositor.visible_widgets
            )
            update_widgets, compositor_refresh = compositor.update_widgets, screen._compositor_refresh
        except AttributeError:  # Textual moved its internals: the documented route below
            paint_now = False
        if paint_now:
            self._set_dirty(*regions)
            update_widgets({self})
            compositor_refresh()
            return
        self.refresh(*regions)

    def watch_scrollback(self) -> None:
        self.refresh()

    def _on_focus(self, event: events.Focus) -> None:
        self.refresh(Region(0, self._frame.cursor_y, self.size.width, 1))

    def _on_blur(self, event: events.Blur) -> None:
        self.refresh(Region(0, self._frame.cursor_y, self.size.width, 1))

    def on_resize(self, event: events.Resize) -> None:
        columns, lines = event.size.width, event.size.height
        if columns > 0 and lines > 0 and (columns, lines) != (
            self._frame.columns,
            self._frame.lines,
        ):
            self.run_worker(
                self._resize_model(columns, lines), group="serial-resize", exclusive=True
            )
        self._line_cache.clear()

    def _history_strip(self, line: HistoryLine, columns: int) -> Strip:
        serial = line[0]
        strip = self._history_cache.get(serial)
        if strip is None or strip.cell_length != columns:
            if len(self._history_cache) > 4 * max(24, self._frame.lines):
                self._history_cache.clear()
            strip = history_to_strip(line, self._frame.attr_table, columns)
            self._history_cache[serial] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        frame = self._frame
        width = self.size.width
        base = self._rich_base()
        cursor_x: int | None = None
        raw: Strip | None = None
        if self.scrollback:
            history = frame.history
            index = len(history) - self.scrollback + y
            if 0 <= index < len(history):
                raw = self._history_strip(history[index], frame.columns)
            elif 0 <= index - len(history) < frame.lines:
                raw = frame.rows[index - len(history)]
        elif y < frame.lines:
            raw = frame.rows[y]
            if frame.cursor_visible and y == frame.cursor_y:
                cursor_x = frame.cursor_x
        if raw is None:
            return Strip.blank(width, base)
        focused = self.has_focus
        key = (base, cursor_x, focused, width)
        cached = self._line_cache.get(y)
        if cached is not None and cached[0] is raw and cached[1] == key:
            return cached[2]
        strip = raw.apply_style(base)
        if cursor_x is not None:
            strip = self._draw_cursor(strip, cursor_x, focused)
        if strip.cell_length != width:
            # Not when it fits already: Strip.crop_extend would cache the strip in itself, a
            # reference cycle per row per frame that only a (UI-stalling) GC pass frees.
            strip = strip.crop_extend(0, width, base)
        self._line_cache[y] = (raw, key, strip)
        return strip

    def _rich_base(self) -> Style:
        """`rich_style`, kept while no style up the tree changes. Why: Textual recomputes it
        from every ancestor's CSS on each call (~0.07 ms here), once per row drawn — a share
        of each echoed key. The key is each ancestor's style counter (Textual bumps it on
        any CSS change: a theme switch, a pseudo-class, an inline style)."""
        key = tuple((id(node), node.styles._cache_key) for node in self.ancestors_with_self)
        cached = self._base_style
        if cached is None or cached[0] != key:
            cached = self._base_style = (key, self.rich_style)
        return cached[1]

    @staticmethod
    def _draw_cursor(strip: Strip, x: int, focused: bool) -> Strip:
        """Invert the cell under the cursor (underline it when the console lacks focus).

        Single-width text (a shell prompt) is split in place, one segment in three; anything
        else goes through Strip.divide/join, which cost several times more per echoed key."""
        segments = [segment for segment in strip if segment.text]  # as divide drops them
        position = 0
        for index, (text, style, control) in enumerate(segments):
            if control is not None or not text.isascii():
                break
            end = position + len(text)
            if end <= x:
                position = end
                continue
            offset = x - position
            cell = style or Style()
            mark = Style(reverse=not cell.reverse) if focused else Style(underline=True)
            parts = [Segment(text[:offset], style)] if offset else []
            parts.append(Segment(text[offset], cell + mark))
            if offset + 1 < len(text):
                parts.append(Segment(text[offset + 1 :], style))
            segments[index : index + 1] = parts
            return Strip(segments, strip.cell_length)
        before, cell, after = strip.divide([x, x + 1, strip.cell_length])[:3]
        segments = []
        for segment in cell:
            style = segment.style or Style()
            mark = Style(reverse=not style.reverse) if focused else Style(underline=True)
            segments.append(Segment(segment.text, style + mark))
        return Strip.join([before, Strip(segments, cell.cell_length), after])

    # -- keyboard and mouse -----------------------------------------------------------------
    def check_consume_key(self, key: str, character: str | None) -> bool:
        """Every key belongs to the guest: this hides app/screen bindings while focused."""
        return True

    def take_key(self, event: events.Key) -> bool:
        """Handle a key the app has just been given, before it is queued (the app's
        `post_message` calls this while this console has the focus). True if handled.

        Why: the normal route — the app's queue, its binding check (which copies every binding
        map up the tree per key, only to find that this widget consumes them all), then this
        widget's queue — measured ~0.4 ms of a 2.8 ms keystroke → echo. The outcome is the same
        (no binding can see a key this widget consumes); only keys that would overtake a queued
        message (this widget's queue not empty) or that this widget may not take (disabled,
        loading) still go the long way."""
        if self.disabled or self.loading or not self.check_message_enabled(event):
            return False
        if not self._message_queue.empty():
            return False
        self._press(event)
        return True

    async def _on_key(self, event: events.Key) -> None:
        self._press(event)

    def _press(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        key = event.key
        if self.chord_armed:
            self._finish_chord(key)
            return
        if key in DETACH_KEYS:
            self.chord_armed = True
            self._chord_timer = self.set_timer(self.chord_timeout, self._chord_expired)
            return
        if key == "shift+pageup":
            self.scroll_history(max(1, self._frame.lines - 1))
            return
        if key == "shift+pagedown":
            self.scroll_history(-max(1, self._frame.lines - 1))
            return
        data = encode_key(key, event.character, app_cursor_keys=self._frame.app_cursor_keys)
        if data is None:
            return
        self.scrollback = 0
        self.send(data)

    def _finish_chord(self, key: str) -> None:
        self.chord_armed = False
        if self._chord_timer is not None:
            self._chord_timer.stop()
            self._chord_timer = None
        if key == "n":
            self.post_message(self.NextConsole(self))
        elif key == "p":
            self.post_message(self.PreviousConsole(self))
        elif key in DETACH_KEYS:
            self.send(b"\x1d")
        else:
            self.post_message(self.Detach(self))

    def _chord_expired(self) -> None:
        self._chord_timer = None
        if self.chord_armed:
            self.chord_armed = False
            self.post_message(self.Detach(self))

    async def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        data = event.text.replace("\r\n", "\r").replace("\n", "\r").encode()
        if self._frame.bracketed_paste:
            data = b"\x1b[200~" + data + b"\x1b[201~"
        self.scrollback = 0
        self.send(data)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_history(3)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_history(-3)

    def on_click(self, event: events.Click) -> None:
        self.focus()
