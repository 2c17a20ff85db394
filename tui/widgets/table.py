"""Filling a DataTable without flicker: update cells in place when only values changed.

A refresh driven by the event stream usually changes a status or two; rebuilding 1,000 rows
for that throws away the cursor and costs a full relayout. `sync_rows` keeps the rows (and the
cursor) when the keys and their order are unchanged, and rebuilds only when they are not.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable


def sync_rows(table: DataTable, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
    current = [rk.value for rk in table.rows]
    wanted = [key for key, _ in rows]
    if current == wanted and table.columns:
        columns = list(table.columns)
        for key, cells in rows:
            old = table.get_row(key)
            for col, (before, after) in enumerate(zip(old, cells)):
                if str(before) != str(after) or type(before) is not type(after):
                    table.update_cell(key, columns[col], after)
        return
    cursor_key = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        try:
            cursor_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            cursor_key = None
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if cursor_key in wanted:
        table.move_cursor(row=wanted.index(cursor_key), animate=False)


def selected_key(table: DataTable) -> str | None:
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:
        return None
