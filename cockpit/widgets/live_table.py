"""A DataTable kept in step with data by diff: rows by stable key, only changed cells touched.

Rebuilding a table every second flickers, loses the cursor and costs CPU over SSH; here a
refresh with the same rows in the same order updates just the cells whose text changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

Cell = str | Text


class LiveTable(DataTable):
    DEFAULT_CSS = """
    LiveTable { height: 1fr; }
    """

    def __init__(self, columns: Sequence[tuple[str, str, int | None]], **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._spec = columns
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}

    def on_mount(self) -> None:
        for label, key, width in self._spec:
            self.add_column(label, key=key, width=width)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def sync(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Make the table show exactly `rows` (key, cells), in order, touching as little as possible."""
        keys = [k for k, _ in rows]
        with self.app.batch_update():
            if keys != self._keys:
                self._rebuild(rows)
                return
            columns = [c[1] for c in self._spec]
            for key, cells in rows:
                old = self._cells.get(key)
                cells = tuple(cells)
                if old == cells:
                    continue
                for col, before, after in zip(columns, old or (None,) * len(cells), cells):
                    if before != after:
                        self.update_cell(key, col, after)
                self._cells[key] = cells

    def _rebuild(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        current = self.current_key()
        self.clear()
        self._keys = []
        self._cells = {}
        for key, cells in rows:
            self.add_row(*cells, key=key)
            self._keys.append(key)
            self._cells[key] = tuple(cells)
        if current is not None and current in self._cells:
            self.move_cursor(row=self._keys.index(current), animate=False)

    def current_key(self) -> str | None:
        if not self._keys or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        except (RowDoesNotExist, IndexError):
            return None
