"""A progress line for uploads and downloads: what, a bar with percentage and ETA, rate."""
from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class TransferBar(Horizontal):
    DEFAULT_CSS = """
    TransferBar { height: 1; display: none; padding: 0 1; }
    TransferBar.-active { display: block; }
    TransferBar Label { width: auto; margin-right: 1; }
    TransferBar #rate { color: $text-muted; margin-left: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="what")
        yield ProgressBar(total=100, show_eta=True, id="bar")
        yield Label("", id="rate")

    def begin(self, what: str, total: int) -> None:
        self._started = time.monotonic()
        self._total = total
        self.query_one("#what", Label).update(what)
        self.query_one(ProgressBar).update(total=max(total, 1), progress=0)
        self.add_class("-active")

    def advance_to(self, done: int) -> None:
        self.query_one(ProgressBar).update(progress=done)
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self.query_one("#rate", Label).update(
            f"{human_bytes(done)}/{human_bytes(self._total)} · {human_bytes(done / elapsed)}/s")

    def finish(self) -> None:
        self.remove_class("-active")
