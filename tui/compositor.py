"""A compositor that renders only the rows an update touches, and only what is not hidden.

Why: Textual's compositor, asked to repaint one dirty row, renders every widget whose *clip*
overlaps that row — and a widget inside its clip renders all its rows, not just the dirty one.
On the console screen that is eight widgets and ~200 lines (the footer and the tab bar
included, though neither is on that row) for one echoed key: 0.8 ms of the keystroke → echo
path on this host (tests/bench/bench_console.py), the largest single share.

What changes, and why the picture stays the same: a widget is rendered only where its visible
part meets the rows of the update, and not at all where a widget in front of it already covers
that part. Textual composes front to back and the frontmost strip of each cut wins (background
blending happens inside each widget's own render, from styles, not from what lies below), so
neither skipped render could have reached the screen. Full-screen renders go through the same
path (the covered widgets are skipped there too).
"""
from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip


class LineCompositor(Compositor):
    """`Compositor` with dirty-row and occlusion culling in `_get_renders` (see module doc)."""

    def _get_renders(
        self, crop: Region | None = None
    ) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if crop is None:
            yield from super()._get_renders(crop)
            return
        band = Region(0, crop.y, max(self.size.width, crop.right), crop.height)
        in_front: list[Region] = []
        for widget, (region, clip) in self.visible_widgets.items():
            visible = region.intersection(clip).intersection(band)
            if not (visible.width and visible.height):
                continue
            if any(front.contains_region(visible) for front in in_front):
                continue
            in_front.append(visible)
            yield (
                region,
                clip.intersection(band),
                widget.render_lines(Region(visible.x - region.x, visible.y - region.y,
                                          visible.width, visible.height)),
            )
