"""Input and TextArea that follow the app's cursor-blink setting (off in snapshot tests)."""
from __future__ import annotations

from textual.widgets import Input, TextArea


class TextInput(Input):
    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "cursor_blink", True)


class TextBox(TextArea):
    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "cursor_blink", True)
