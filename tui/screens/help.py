"""`?`: every key of the app and of the screen you came from, in one scrollable sheet."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GLOBAL_KEYS = [
    ("1 … 8", "Overview, Instances, Images, Volumes, Networks, Objects, Identity, Events"),
    ("9", "Audit trail (admins)"),
    ("?", "this help"),
    ("ctrl+p", "command palette: every action by name"),
    ("ctrl+t", "light / dark theme"),
    ("ctrl+o", "switch project"),
    ("ctrl+r", "refresh now"),
    ("ctrl+q", "quit"),
]


def _key(binding: Binding) -> str:
    return binding.key_display or binding.key.replace("ctrl+", "^")


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 78; max-width: 100%; height: auto; max-height: 100%;
                            border: thick $primary; background: $surface; padding: 0 1; }
    HelpScreen VerticalScroll { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, origin: Screen | None) -> None:
        super().__init__()
        self.origin = origin

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Help"
            box.border_subtitle = "esc close"
            with VerticalScroll():
                yield Static(self._sheet())

    def _sheet(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row(Text("Everywhere", style="bold underline"), "")
        for key, what in GLOBAL_KEYS:
            table.add_row(key, what)
        origin = self.origin
        bindings = [b for b in getattr(origin, "BINDINGS", []) if isinstance(b, Binding)
                    and b.description]
        if bindings:
            table.add_row("", "")
            title = getattr(origin, "TITLE", "") or type(origin).__name__
            table.add_row(Text(title, style="bold underline"), "")
            for b in bindings:
                table.add_row(_key(b), b.description)
        return table
