"""A one-line sparkline of the most recent samples, right-aligned like a strip chart.

Textual's `Sparkline` stretches a few samples into wide blocks and scales to the data's own
min..max, so 5 % CPU after two zeros draws as a full bar. Here each sample is one cell, the
newest on the right, and the scale is fixed (0..100 for percentages) or floored (`floor`) so
noise stays low.
"""
from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

BLOCKS = "▁▂▃▄▅▆▇█"


class Spark(Widget):
    DEFAULT_CSS = """
    Spark { height: 1; width: 1fr; }
    """

    def __init__(self, *, scale: float | None = None, floor: float = 1.0,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.scale = scale
        self.floor = floor
        self.samples: list[float] = []

    def set_samples(self, samples: Sequence[float]) -> None:
        self.samples = list(samples)
        self.refresh()

    def render(self) -> Text:
        width = self.size.width
        data = self.samples[-width:] if width else []
        top = self.scale or max([self.floor, *data])
        text = Text(" " * (width - len(data)))
        for value in data:
            frac = min(max(value / top, 0.0), 1.0) if top else 0.0
            style = "green" if frac < 0.6 else "yellow" if frac < 0.85 else "red"
            if value <= 0:
                text.append(BLOCKS[0], style="dim")
            else:
                text.append(BLOCKS[min(int(frac * len(BLOCKS)), len(BLOCKS) - 1)], style=style)
        return text
