"""`sync_rows` on a `KeyedTable`: what is painted always equals a freshly filled table, and an
in-place refresh re-renders only the rows that changed (the cache surgery in
tui/widgets/table.py relies on DataTable internals; these tests catch a Textual that moved them).
"""
from __future__ import annotations

import random

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.widgets.table import KeyedTable, sync_rows

COLUMNS = ("name", "status", "age")
STATUSES = ["ACTIVE", "SHUTOFF", "BUILD", "ERROR", "PAUSED"]


def make_rows(n: int, rng: random.Random | None = None) -> list[tuple[str, tuple]]:
    rows = []
    for i in range(n):
        status = STATUSES[(i if rng is None else rng.randrange(5)) % len(STATUSES)]
        rows.append((f"id-{i:04d}", (f"web-{i:04d}", Text(status, style="bold"), f"{i % 7}m ago")))
    return rows


class Tables(App):
    """A KeyedTable kept by sync_rows beside a plain DataTable refilled from scratch."""

    CSS = "DataTable { height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield KeyedTable(id="keyed", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="fresh", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for table in self.query(DataTable):
            for key in COLUMNS:
                table.add_column(key.title(), key=key)


def painted(table: DataTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def show_both(app: Tables, pilot, rows) -> None:
    keyed = app.query_one("#keyed", KeyedTable)
    sync_rows(keyed, rows)
    fresh = app.query_one("#fresh", DataTable)
    fresh.clear()
    for key, cells in rows:
        fresh.add_row(*cells, key=key)
    await pilot.pause()
    fresh.move_cursor(row=keyed.cursor_row, animate=False)  # clear() forgot both
    await pilot.pause()
    fresh.scroll_to(y=keyed.scroll_y, animate=False, immediate=True)
    await pilot.pause()


async def test_in_place_refreshes_paint_what_a_fresh_table_paints():
    rng = random.Random(16)
    app = Tables()
    async with app.run_test(size=(60, 40)) as pilot:
        rows = make_rows(300)
        await show_both(app, pilot, rows)
        keyed = app.query_one("#keyed", KeyedTable)
        fresh = app.query_one("#fresh", DataTable)
        for step in range(12):
            rows = list(rows)
            for index in rng.sample(range(len(rows)), 8):
                key, (name, _, age) = rows[index]
                status = rng.choice(STATUSES + ["VERIFY_RESIZE"])  # one wider than any before
                rows[index] = (key, (name, Text(status, style="bold"), age))
            if step == 5:  # the cursor and scroll position matter too
                keyed.move_cursor(row=20, animate=False)
            await show_both(app, pilot, rows)
            assert painted(keyed) == painted(fresh), f"step {step}"
            assert [keyed.get_row(k) for k, _ in rows[:50]] == [list(c) for _, c in rows[:50]]


async def test_a_refresh_renders_only_the_changed_rows():
    app = Tables()
    async with app.run_test(size=(60, 40)) as pilot:
        rows = make_rows(1000)
        await show_both(app, pilot, rows)
        keyed = app.query_one("#keyed", KeyedTable)
        rendered: list[int] = []
        original = keyed._compute_row_renderables

        def counting(row_index: int):
            rendered.append(row_index)
            return original(row_index)

        keyed._compute_row_renderables = counting  # type: ignore[method-assign]
        changed = [2, 5, 11]
        rows = list(rows)
        for index in changed:
            key, (name, _, age) = rows[index]
            rows[index] = (key, (name, Text("REBOOT", style="bold"), age))
        sync_rows(keyed, rows)
        await pilot.pause()
        assert sorted(set(rendered)) == changed
        assert "REBOOT" in painted(keyed)[1 + 5]  # the header, then row 5
        rendered.clear()
        sync_rows(keyed, rows)  # nothing changed: nothing drawn again
        await pilot.pause()
        assert rendered == []


async def test_a_table_cleared_elsewhere_is_rebuilt_not_patched():
    app = Tables()
    async with app.run_test(size=(60, 20)) as pilot:
        rows = make_rows(30)
        keyed = app.query_one("#keyed", KeyedTable)
        sync_rows(keyed, rows)
        keyed.clear()
        sync_rows(keyed, rows)
        await pilot.pause()
        assert keyed.row_count == 30
        assert keyed.get_row("id-0029")[0] == "web-0029"
