"""The top bar: monostack · screen on the left; host · user@project · clock on the right; and
the link banner.

Reads the app's reactive `who`, `where` and `link_up`; the banner (one line under the bar)
appears only while the event stream is down, so every screen shows a lost connection the same
way without each one knowing about it.
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class AppHeader(Vertical):
    DEFAULT_CSS = """
    AppHeader { height: auto; dock: top; }
    AppHeader #bar { height: 1; background: $panel; padding: 0 1; }
    AppHeader #banner { height: 1; background: $error; color: $text; padding: 0 1;
                        display: none; text-style: bold; }
    AppHeader #banner.-shown { display: block; }
    """

    def __init__(self, title: str = "") -> None:
        super().__init__()
        self.screen_title = title

    def compose(self) -> ComposeResult:
        yield Static(id="bar")
        yield Static(id="banner")

    def on_mount(self) -> None:
        self.watch(self.app, "where", self._refresh_bar)
        self.watch(self.app, "who", self._refresh_bar)
        self.watch(self.app, "link_up", self._refresh_banner)
        self.set_interval(1.0, self._refresh_bar)

    def _refresh_bar(self, *_: object) -> None:
        app = self.app
        left = Text("monostack", style="bold")
        if self.screen_title:
            left.append(" · ")
            left.append(self.screen_title, style="bold")
        right = Text(overflow="ellipsis", no_wrap=True, justify="right")
        for part in (getattr(app, "where", ""), getattr(app, "who", "")):
            if part:
                right.append(part)
                right.append(" · ", style="dim")
        clock = getattr(app, "clock", None)
        if clock is not None:
            right.append(clock.wall())
        grid = Table.grid(expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True, overflow="ellipsis")
        grid.add_row(left, right)
        self.query_one("#bar", Static).update(grid)

    def _refresh_banner(self, *_: object) -> None:
        banner = self.query_one("#banner", Static)
        up = getattr(self.app, "link_up", True)
        banner.set_class(not up, "-shown")
        if not up:
            banner.update("⚠ connection to the daemon lost — reconnecting…")
