"""ConsoleScreen: live serial consoles of several instances, one tab each.

The guest owns the keyboard; Ctrl+] gives it back (see SerialConsole). The screen never dials
anything itself: it is handed `open_transport(instance_id)`, which the app builds from the
daemon client (a websocket to the serial console proxy) and tests build from a queue. Each
console wraps it in a ReconnectingTransport, so an instance reboot shows "reconnecting…" in
the header and the console carries on when the guest is back.

Keep the consoles alive across visits by installing the screen once
(`app.install_screen(ConsoleScreen(...), "consoles")`) and pushing it by name: a popped,
installed screen keeps its tabs, scrollback and links; an uninstalled one closes them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane

from tui.compositor import LineCompositor
from tui.widgets.console_transport import ConsoleTransport, ReconnectingTransport
from tui.widgets.serial_console import SerialConsole

TransportFactory = Callable[[str], "ConsoleTransport | Awaitable[ConsoleTransport]"]

FOOTER_HINT = "Ctrl+] back to monostack · Ctrl+] n/p next/previous · Shift+PgUp scrollback"
CHORD_HINT = "^]  n next · p previous · ^] sends ^] · any other key: back to monostack"


@dataclass(frozen=True, slots=True)
class ConsoleTarget:
    """An instance whose console can be opened: its id (for the transport) and display name."""

    instance_id: str
    name: str


class ConsolePane(TabPane):
    """A tab holding one instance's console."""

    def __init__(self, title: str, console: SerialConsole, *, id: str) -> None:  # noqa: A002
        super().__init__(title, console, id=id)
        self.console = console


def _pane_id(instance_id: str) -> str:
    return "console-" + re.sub(r"[^A-Za-z0-9_-]", "_", instance_id)


class ConsoleScreen(Screen[None]):
    """Tabs of serial consoles with a status header and a key-hint footer."""

    DEFAULT_CSS = """
    ConsoleScreen {
        layout: vertical;
    }
    ConsoleScreen #console-header {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    ConsoleScreen #console-title {
        width: 1fr;
        padding: 0 1;
        text-style: bold;
    }
    ConsoleScreen #console-status {
        width: auto;
        padding: 0 1;
        color: $text-muted;
    }
    ConsoleScreen #console-status.-connected { color: $success; }
    ConsoleScreen #console-status.-reconnecting { color: $warning; }
    ConsoleScreen #console-status.-closed { color: $error; }
    ConsoleScreen #console-tabs {
        height: 1fr;
    }
    ConsoleScreen #console-tabs > ContentSwitcher {
        height: 1fr;
    }
    ConsoleScreen TabPane {
        padding: 0;
        height: 1fr;
    }
    ConsoleScreen #console-empty {
        height: 1fr;
        content-align: center middle;
        color: $text-muted;
    }
    ConsoleScreen #console-footer {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    ConsoleScreen #console-footer.-chord {
        background: $warning;
        color: $text;
    }
    """

    def __init__(
        self,
        open_transport: TransportFactory,
        targets: Iterable[ConsoleTarget] = (),
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's spelling
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        # An echoed key repaints one row: render that row only (see tui/compositor.py).
        self._compositor = LineCompositor()
        self.open_transport = open_transport
        self._initial = list(targets)
        self._names: dict[str, str] = {}
        # The tab we asked for; Tabs activates a first tab late, so we re-assert this once.
        self._want_active: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="console-header"):
            yield Static("Console", id="console-title")
            yield Static("", id="console-status")
        yield Static("No console open — choose an instance and press c.", id="console-empty")
        panes = [self._make_pane(t.instance_id, t.name) for t in self._initial]
        initial = panes[0].id if panes else None
        with TabbedContent(id="console-tabs", initial=initial or ""):
            yield from panes
        yield Static(FOOTER_HINT, id="console-footer")

    def on_mount(self) -> None:
        self._focus_active()
        self._refresh_chrome()

    def _make_pane(self, instance_id: str, name: str | None) -> ConsolePane:
        """A tab holding a new console for `instance_id` (the console is `pane.console`)."""
        pane_id = _pane_id(instance_id)
        transport = ReconnectingTransport(lambda: self.open_transport(instance_id))
        console = SerialConsole(transport, id=f"{pane_id}-terminal")
        self._names[console.id or ""] = name or instance_id
        for attribute in ("link_state", "terminal_size", "chord_armed", "scrollback"):
            self.watch(console, attribute, self._refresh_chrome, init=False)
        return ConsolePane(name or instance_id, console, id=pane_id)

    # -- public API -------------------------------------------------------------------------
    @property
    def consoles(self) -> list[SerialConsole]:
        """Open consoles in tab order."""
        return list(self.query(SerialConsole))

    @property
    def active_console(self) -> SerialConsole | None:
        tabs = self.query_one("#console-tabs", TabbedContent)
        if not tabs.active:
            return None
        try:
            return tabs.get_pane(tabs.active).query_one(SerialConsole)
        except NoMatches:
            return None

    async def open_console(self, instance_id: str, name: str | None = None) -> SerialConsole:
        """Open (or switch to) the console of `instance_id` and give it the keyboard."""
        tabs = self.query_one("#console-tabs", TabbedContent)
        pane_id = _pane_id(instance_id)
        try:
            console = tabs.get_pane(pane_id).query_one(SerialConsole)
        except (NoMatches, ValueError):
            pane = self._make_pane(instance_id, name)
            console = pane.console
            await tabs.add_pane(pane)
        self._want_active = pane_id
        tabs.active = pane_id
        console.focus()
        self._refresh_chrome()
        return console

    async def close_console(self, instance_id: str) -> None:
        """Close one console tab (its link is closed when the widget unmounts)."""
        tabs = self.query_one("#console-tabs", TabbedContent)
        try:
            await tabs.remove_pane(_pane_id(instance_id))
        except NoMatches:
            return
        self._focus_active()
        self._refresh_chrome()

    def switch_console(self, step: int) -> None:
        """Activate the console `step` tabs away (wrapping), and focus it."""
        tabs = self.query_one("#console-tabs", TabbedContent)
        panes = [pane.id for pane in tabs.query(TabPane) if pane.id]
        if not panes:
            return
        index = panes.index(tabs.active) if tabs.active in panes else 0
        tabs.active = panes[(index + step) % len(panes)]
        self._focus_active()
        self._refresh_chrome()

    # -- reactions --------------------------------------------------------------------------
    def _focus_active(self) -> None:
        console = self.active_console
        if console is not None:
            console.focus()

    def _refresh_chrome(self, *_: object) -> None:
        console = self.active_console
        consoles = self.consoles
        self.query_one("#console-empty").display = not consoles
        self.query_one("#console-tabs").display = bool(consoles)
        title = self.query_one("#console-title", Static)
        status = self.query_one("#console-status", Static)
        footer = self.query_one("#console-footer", Static)
        if console is None:
            title.update("Console")
            status.update("")
            status.set_classes("")
            footer.update(FOOTER_HINT)
            footer.set_class(False, "-chord")
            return
        title.update(self._names.get(console.id or "", "Console"))
        status.update(console.status_text)
        status.set_classes(f"-{console.link_state.value}")
        footer.update(CHORD_HINT if console.chord_armed else FOOTER_HINT)
        footer.set_class(console.chord_armed, "-chord")

    def on_screen_resume(self) -> None:
        self._focus_active()
        self._refresh_chrome()

    @on(TabbedContent.TabActivated)
    def _on_console_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tabs = self.query_one("#console-tabs", TabbedContent)
        if self._want_active is not None:
            if event.pane.id != self._want_active:
                tabs.active = self._want_active
                return
            self._want_active = None
        self._focus_active()
        self._refresh_chrome()

    @on(SerialConsole.Connected)
    @on(SerialConsole.Disconnected)
    def _on_console_link_changed(self) -> None:
        self._refresh_chrome()

    @on(SerialConsole.NextConsole)
    def _on_console_next(self, event: SerialConsole.NextConsole) -> None:
        event.stop()
        self.switch_console(+1)

    @on(SerialConsole.PreviousConsole)
    def _on_console_previous(self, event: SerialConsole.PreviousConsole) -> None:
        event.stop()
        self.switch_console(-1)

    @on(SerialConsole.Detach)
    def _on_console_detach(self, event: SerialConsole.Detach) -> None:
        """Back to monostack: leave this screen if something is under it, else let the app
        decide (the Detach message keeps bubbling)."""
        if len(self.app.screen_stack) > 1 and self.is_current:
            event.stop()
            self.dismiss()
