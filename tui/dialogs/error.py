"""A modal for errors worth reading in full (long OpenStack fault messages)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    ErrorDialog { align: center middle; }
    ErrorDialog > Vertical { width: 70; max-width: 95%; height: auto; max-height: 90%;
                             border: thick $error; background: $surface; padding: 1 2; }
    ErrorDialog VerticalScroll { height: auto; max-height: 16; }
    ErrorDialog Button { margin-top: 1; }
    """
    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            with VerticalScroll():
                yield Static(self.message, markup=False)
            yield Button("Close", variant="primary")

    def on_button_pressed(self) -> None:
        self.dismiss()
