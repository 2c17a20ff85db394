"""Yes/no before anything destructive: ModalScreen[bool], `y`/`n`, Escape says no."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical { width: 60; max-width: 95%; height: auto; border: thick $error;
                               background: $surface; padding: 1 2; }
    ConfirmDialog #question { width: 1fr; margin-bottom: 1; }
    ConfirmDialog Horizontal { height: auto; align: right middle; }
    ConfirmDialog Button { margin-left: 1; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel", show=False)]

    def __init__(self, question: str, *, title: str = "Are you sure?",
                 yes: str = "Delete", danger: bool = True) -> None:
        super().__init__()
        self.question = question
        self.title_text = title
        self.yes = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Label(self.question, id="question")
            with Horizontal():
                yield Button("No (n)", id="no")
                yield Button(f"{self.yes} (y)", id="yes",
                             variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
