"""The 'not available' panel a screen shows when its service is missing or answers 404/503."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class Unavailable(Static):
    DEFAULT_CSS = """
    Unavailable { width: 1fr; height: 1fr; content-align: center middle;
                  color: $text-muted; padding: 1 2; }
    """

    def show(self, service_label: str, reason: str = "") -> None:
        text = Text(justify="center")
        text.append(f"{service_label} is not available\n\n", style="bold")
        text.append(reason or "The component is not installed or not running on this appliance.")
        text.append("\n\nThis screen lights up by itself when it comes back.", style="dim")
        self.update(text)
