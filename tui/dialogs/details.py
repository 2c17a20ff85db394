"""A read-only sheet of facts (object metadata, headers): key → value, escape closes.

Not the error dialog: nothing went wrong, so no red frame and no button to aim at; long
values wrap under their key instead of widening the sheet."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class DetailsDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailsDialog { align: center middle; }
    DetailsDialog > Vertical { width: 72; max-width: 94%; height: auto; max-height: 90%;
                               border: round $accent; border-title-color: $accent;
                               border-title-style: bold; border-subtitle-color: $text-muted;
                               background: $surface; padding: 0 1; }
    DetailsDialog VerticalScroll { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, title: str, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in self.rows:
            grid.add_row(key, value)
        if not self.rows:
            grid.add_row(Text("(nothing to show)", style="dim"), "")
        with Vertical() as box:
            box.border_title = self.title_text
            box.border_subtitle = "esc close"
            with VerticalScroll():
                yield Static(grid)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
