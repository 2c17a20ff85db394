"""The key-hint footer: Textual's Footer, compact, with the palette key on the right.

Under 100 columns the palette hint gives its room to the screen's own keys (ctrl+p still works
and the help sheet lists it): at 80×24 every screen shows its actions, `1…9 Screens` (the number
keys this user has: members `1…6,8`) and `? Help`.
"""
from __future__ import annotations

from textual import events
from textual.widgets import Footer

#: Narrower than this, the "^p palette" hint is left out.
PALETTE_MIN_WIDTH = 100


class KeyHints(Footer):
    def __init__(self, show_palette: bool = True) -> None:
        super().__init__(compact=True, show_command_palette=show_palette)
        self.wants_palette = show_palette

    def on_resize(self, event: events.Resize) -> None:
        show = self.wants_palette and event.size.width >= PALETTE_MIN_WIDTH
        if show != self.show_command_palette:
            self.show_command_palette = show
