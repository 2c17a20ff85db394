"""The key-hint footer: Textual's Footer, compact, with the palette key on the right."""
from __future__ import annotations

from textual.widgets import Footer


class KeyHints(Footer):
    def __init__(self, show_palette: bool = True) -> None:
        super().__init__(compact=True, show_command_palette=show_palette)
