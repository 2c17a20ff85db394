"""What every cloud screen shares: header, footer, 'not available' state, loading in workers.

A screen declares the service it needs (`SERVICE`), the event resource types that make it
stale (`RESOURCE_TYPES`), and implements `fetch()` (daemon calls, in a worker) and
`show(data)` (widgets, on the UI thread). The base class decides between the body and the
'not available' panel, turns daemon errors into notifications, reloads on the app's debounced
event signal and on a slow periodic timer as a fallback, and reloads a stale screen when the
operator comes back to it.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.binding import Binding
from textual.widgets import ContentSwitcher, DataTable, TabbedContent

from appliance.errors import MonostackError
from tui.cloud import SERVICE_LABELS, Cloud, CloudEvent, unavailable
from tui.host import ConsoleHost, host_of
from tui.widgets.footer import KeyHints
from tui.widgets.header import AppHeader
from tui.widgets.unavailable import Unavailable


class CloudScreen(Screen):
    TITLE: ClassVar[str] = ""
    SERVICE: ClassVar[str | None] = None
    RESOURCE_TYPES: ClassVar[frozenset[str]] = frozenset()
    ADMIN_ONLY: ClassVar[bool] = False
    #: The footer's "^p palette" hint; the overview gives its room to the number keys.
    PALETTE_HINT: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.stale = True
        self.loaded = False
        self._started = False

    @property
    def monostack(self) -> ConsoleHost:
        """The app, as the small protocol a screen may use (tui/host.py)."""
        return host_of(self)

    @property
    def cloud(self) -> Cloud:
        return self.monostack.cloud

    # layout
    def compose(self) -> ComposeResult:
        yield AppHeader(self.TITLE)
        with ContentSwitcher(initial="body", id="switcher"):
            yield Unavailable(id="unavailable")
            with Vertical(id="body"):
                yield from self.compose_body()
        yield KeyHints(self.PALETTE_HINT)

    def compose_body(self) -> ComposeResult:
        yield from ()

    # loading
    def on_mount(self) -> None:
        # Textual runs every class's on_mount along the MRO, and screens also call
        # super().on_mount(): without this, each screen had two timers and loaded twice.
        if self._started:
            return
        self._started = True
        self.monostack.register_screen(self)
        self.set_interval(self.monostack.refresh_seconds, self._periodic)
        self.reload()

    def on_screen_resume(self) -> None:
        if self.stale and self.loaded:
            self.reload()

    def _periodic(self) -> None:
        if self.is_current:
            self.reload()

    def affected_by(self, resource_types: set[str]) -> bool:
        return bool(self.RESOURCE_TYPES & resource_types) or "*" in resource_types

    def reload(self) -> None:
        self.stale = False
        self._load()

    def live_event(self, event: CloudEvent) -> None:
        """Each event of the live stream as it arrives; screens that list events follow it."""

    @work(exclusive=True, group="load", exit_on_error=False)
    async def _load(self) -> None:
        if self.SERVICE and not self.cloud.has(self.SERVICE):
            self.show_unavailable()
            return
        try:
            data = await self.fetch()
        except MonostackError as exc:
            if unavailable(exc):
                self.show_unavailable(str(exc))
            else:
                self.monostack.report_error(exc)
            return
        except Exception as exc:  # never a traceback on the operator's screen
            self.monostack.report_error(exc)
            return
        self.query_one("#switcher", ContentSwitcher).current = "body"
        self.loaded = True
        self.show(data)

    def show_unavailable(self, reason: str = "") -> None:
        label = SERVICE_LABELS.get(self.SERVICE or "", self.SERVICE or self.TITLE)
        self.query_one("#unavailable", Unavailable).show(label, reason)
        self.query_one("#switcher", ContentSwitcher).current = "unavailable"
        self.loaded = True

    @property
    def available(self) -> bool:
        return self.query_one("#switcher", ContentSwitcher).current == "body"

    async def fetch(self) -> Any:
        return None

    def show(self, data: Any) -> None:
        pass

    # calls that change things
    def call(self, make: Callable[[], Awaitable[Any]], *, done: str | None = None,
             reload: bool = True, then: Callable[[Any], None] | None = None) -> None:
        """Run a daemon call in a worker; errors become notifications, success reloads."""
        self.run_worker(self._call(make, done, reload, then), group="calls", exit_on_error=False)

    async def _call(self, make, done, reload, then) -> None:
        try:
            result = await make()
        except Exception as exc:
            self.monostack.report_error(exc)
            return
        if done:
            self.notify(done, timeout=3)
        if then is not None:
            then(result)
        if reload:
            self.reload()

    def host_files_allowed(self, instead: str) -> bool:
        """False (and says why, and what to use instead) in a browser session: its process
        runs on the appliance, so a "local file" path would read or write the appliance's
        disk, never the operator's machine. Uploads and downloads by path are refused there."""
        if not self.monostack.web_session:
            return True
        self.notify("This console runs in a browser: a file path here would name a file on "
                    f"the appliance, not on your machine. From your machine: {instead} "
                    "(or `monostack tui` over SSH).", title="Not in a browser session",
                    severity="warning", timeout=12)
        return False

    def require_selection(self, key: str | None, what: str = "item") -> bool:
        if key is None:
            self.notify(f"Select a{'n' if what[0] in 'aeiou' else ''} {what} first.",
                        severity="warning", timeout=3)
            return False
        return True


class TabbedScreen(CloudScreen):
    """A cloud screen whose body is a TabbedContent of tables: [ and ] switch tabs."""

    TAB_BINDINGS = [Binding("left_square_bracket", "tab(-1)", "Previous tab", key_display="[", show=False),
                    Binding("right_square_bracket", "tab(1)", "Next tab", key_display="]", show=False)]

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        panes = [p.id for p in tabs.query("TabPane")]
        if not panes:
            return
        current = panes.index(tabs.active) if tabs.active in panes else 0
        tabs.active = panes[(current + step) % len(panes)]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        table = event.pane.query(DataTable).first() if event.pane.query(DataTable) else None
        if table is not None:
            table.focus()
        self.refresh_bindings()  # the footer shows only what the new tab can do
