"""Filling a DataTable without flicker: update cells in place when only values changed.

A refresh driven by the event stream usually changes a status or two; rebuilding 1,000 rows
for that throws away the cursor and costs a full relayout. `sync_rows` keeps the rows (and the
cursor) when the keys and their order are unchanged, and rebuilds only when they are not.

`DataTable.update_cell` bumps the table's update count, which is part of every render cache key,
so each update re-renders every visible row from scratch (~45 rows × 7 cells, 30-60 ms on this
2-core host). `KeyedTable` changes cells with a row-precise invalidation instead: only the
changed rows' cached renders are dropped and only their lines repainted. It reaches into
DataTable's caches (textual 8.x; tests/tui/test_table_sync.py pins the behaviour), falling back
to `update_cell` when a column must widen.

What the table shows is mirrored beside it (`_mirrors`), so a refresh compares the new cells
with the mirror instead of asking the table for each row (`DataTable.get_row` walks the
columns and hashes every key: ~0.1 ms a row, 100 ms for 1,000). A caller that hands back the
same cell tuple for an unchanged row costs one identity check for it; only rows whose cells
differ reach `update_cell`. `sync_rows` must be the only writer of a table's rows; a `clear()`
from elsewhere is noticed (the row count no longer matches) and answered with a rebuild.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from rich.cells import cell_len
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


@dataclass
class _Mirror:
    order: list[str]
    cells: dict[str, tuple[Any, ...]] = field(default_factory=dict)


_mirrors: WeakKeyDictionary[DataTable, _Mirror] = WeakKeyDictionary()


def sync_rows(table: DataTable, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
    wanted = [key for key, _ in rows]
    mirror = _mirrors.get(table)
    if (mirror is not None and mirror.order == wanted and table.row_count == len(wanted)
            and table.columns):
        _update_changed(table, mirror, rows)
        return
    cursor_key = selected_key(table)
    table.clear()
    mirror = _Mirror(order=wanted)
    for key, cells in rows:
        cells = tuple(cells)
        mirror.cells[key] = cells
        table.add_row(*cells, key=key)
    _mirrors[table] = mirror
    if cursor_key in mirror.cells:
        table.move_cursor(row=wanted.index(cursor_key), animate=False)


def _update_changed(table: DataTable, mirror: _Mirror,
                    rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
    columns: list[ColumnKey] | None = None
    changed: list[tuple[str, ColumnKey, Any]] = []
    for key, cells in rows:
        old = mirror.cells[key]
        if old is cells:
            continue
        cells = tuple(cells)
        mirror.cells[key] = cells
        for index, (before, after) in enumerate(zip(old, cells)):
            if before is after or (type(before) is type(after) and before == after):
                continue
            if columns is None:
                columns = [column.key for column in table.ordered_columns]
            changed.append((key, columns[index], after))
    if not changed:
        return
    narrow = []
    for key, column_key, value in changed:
        # Widen the column when the new value needs it (a status longer than any shown
        # before). Asking for a width update otherwise would measure the whole column.
        if cell_len(str(value)) > table.columns[column_key].content_width:
            table.update_cell(key, column_key, value, update_width=True)
        else:
            narrow.append((key, column_key, value))
    if isinstance(table, KeyedTable):
        table.update_cells(narrow)
    else:
        for key, column_key, value in narrow:
            table.update_cell(key, column_key, value)


class KeyedTable(DataTable):
    """A DataTable whose in-place cell updates cost the rows they touch, not the table."""

    def update_cells(self, changes: Sequence[tuple[str, ColumnKey, Any]]) -> None:
        """Set cells that fit their columns' current widths; re-render only their rows."""
        rows: set[str] = set()
        cells: set[tuple[str, str | None]] = set()
        for key, column_key, value in changes:
            row_key = RowKey(key)
            if row_key not in self._row_locations or column_key not in self._column_locations:
                self.update_cell(key, column_key, value)  # raises CellDoesNotExist
            self._data[row_key][column_key] = value
            rows.add(key)
            cells.add((key, column_key.value))
        if not rows:
            return
        # Every render cache below is keyed by the update count (unchanged here), so drop
        # exactly the entries that drew one of these cells or rows; the rest stay valid.
        cache = self._cell_render_cache
        for cache_key in [k for k in cache.keys() if (k[0].value, k[1].value) in cells]:
            cache.discard(cache_key)
        cache = self._row_render_cache
        for cache_key in [k for k in cache.keys() if k[0].value in rows]:
            cache.discard(cache_key)
        indices = [self._row_locations.get(RowKey(key)) for key in rows]
        for index in indices:
            self._row_renderable_cache.discard((self._update_count, index))
        for cache_key in list(self._line_cache.keys()):
            try:
                row_key, _ = self._get_offsets(cache_key[0])
            except LookupError:
                continue
            if row_key.value in rows:
                self._line_cache.discard(cache_key)
        for index in indices:
            self.refresh_row(index)


def selected_key(table: DataTable) -> str | None:
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:
        return None
