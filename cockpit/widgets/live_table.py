"""A live table that stays instant at tens of thousands of rows.

It draws only the rows on screen (like k9s): the rows are a list, and `sync` replaces it in one
go, so a new order, a filter or a sort is one assignment and one repaint of the visible lines,
never a rebuild. The cursor stays on the same row key across updates. Columns have fixed widths
except one that takes what is left; when the terminal is too narrow, the least important
columns (highest `drop`) go first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text
MIN_FLEX = 10  # the flexible column, at its narrowest


@dataclass(frozen=True)
class Column:
    label: str
    key: str
    width: int | None  # None: the flexible column, which takes the width that is left
    drop: int = 0  # when the terminal is narrow, columns with the highest drop go first; 0 stays


def _column(c: Column | tuple) -> Column:
    return c if isinstance(c, Column) else Column(*c)


def layout(columns: Sequence[Column], width: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown in `width` cells, one space between them."""
    shown = list(range(len(columns)))

    def need(idx: list[int]) -> int:
        fixed = sum(columns[i].width or MIN_FLEX for i in idx)
        return fixed + max(len(idx) - 1, 0)

    while need(shown) > width:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    spare = width - need(shown)
    out = []
    for i in shown:
        w = columns[i].width
        out.append((i, (MIN_FLEX + max(spare, 0)) if w is None else w))
    return out


class LiveTable(ScrollView, can_focus=True):
    """Rows by stable key; a cursor; j/k/g/G and the usual keys; `y` copies the row (OSC 52)."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("home,g,ctrl+home", "first", "First row", show=False, id="table.first"),
        Binding("end,G,ctrl+end", "last", "Last row", show=False, id="table.last"),
        Binding("y", "copy_row", "Copy row", show=False, id="table.copy"),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES = {"live-table--header", "live-table--cursor", "live-table--cursor-blurred"}

    class Highlighted(Message):
        """The cursor is on another row (or the row under it changed key)."""

        def __init__(self, table: LiveTable, key: str | None):
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> LiveTable:
            return self.table

    class Selected(Message):
        """Enter on a row."""

        def __init__(self, table: LiveTable, key: str):
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> LiveTable:
            return self.table

    def __init__(self, columns: Sequence[Column | tuple], **kwargs):
        super().__init__(**kwargs)
        self.columns = [_column(c) for c in columns]
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._index: dict[str, int] = {}
        self._cursor = 0
        self._highlighted: str | None = None
        self._layout: list[tuple[int, int]] = []
        self._layout_width = -1
        self._strips: dict[str, tuple[tuple[Cell, ...], Strip]] = {}

    # --- data ------------------------------------------------------------------------------------

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def cursor_row(self) -> int:
        return self._cursor if self._keys else -1

    def cells(self, key: str) -> tuple[Cell, ...] | None:
        return self._cells.get(key)

    def sync(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Show exactly `rows` (key, cells), in order. The cursor stays on its row's key; when
        that row is gone (filtered out, removed) it goes to the first row, not to whatever row
        happens to take the old index."""
        current = self.current_key()
        keys = [k for k, _ in rows]
        cells = {k: tuple(c) for k, c in rows}
        if keys == self._keys and cells == self._cells:
            return
        self._keys = keys
        self._cells = cells
        self._index = {k: i for i, k in enumerate(keys)}
        self._strips = {k: v for k, v in self._strips.items() if k in cells and cells[k] == v[0]}
        self._cursor = self._index.get(current, 0) if current is not None else 0
        self._cursor = max(0, min(self._cursor, len(keys) - 1))
        self.virtual_size = Size(self._width(), len(keys) + 1)
        self._scroll_to_cursor()
        self.refresh()
        self._announce()

    def current_key(self) -> str | None:
        if not self._keys:
            return None
        return self._keys[min(self._cursor, len(self._keys) - 1)]

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        if not self._keys:
            return
        self._cursor = max(0, min(row, len(self._keys) - 1))
        self._scroll_to_cursor()
        self.refresh()
        self._announce()

    def move_to_key(self, key: str) -> bool:
        i = self._index.get(key)
        if i is None:
            return False
        self.move_cursor(row=i)
        return True

    def row_text(self, key: str) -> str:
        """The row as plain text, columns separated by tabs (what `y` copies)."""
        return "\t".join(c.plain if isinstance(c, Text) else str(c) for c in self._cells.get(key, ()))

    def _announce(self) -> None:
        key = self.current_key()
        if key != self._highlighted:
            self._highlighted = key
            self.post_message(self.Highlighted(self, key))

    # --- keys ------------------------------------------------------------------------------------

    def _page(self) -> int:
        return max(self.size.height - 2, 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self._cursor - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(row=self._cursor + self._page())

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=len(self._keys) - 1)

    def action_copy_row(self) -> None:
        key = self.current_key()
        if key is None:
            return
        self.app.copy_to_clipboard(self.row_text(key))
        self.notify("row copied (OSC 52)", timeout=2)

    def action_select(self) -> None:
        key = self.current_key()
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event) -> None:
        row = self.scroll_offset.y + event.y - 1
        if event.y >= 1 and 0 <= row < len(self._keys):
            self.move_cursor(row=row)

    def _scroll_to_cursor(self) -> None:
        visible = max(self.size.height - 1, 1)
        top = int(self.scroll_offset.y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=False, immediate=True)

    def on_resize(self) -> None:
        self.virtual_size = Size(self._width(), len(self._keys) + 1)
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- drawing ---------------------------------------------------------------------------------

    def _width(self) -> int:
        return self.scrollable_content_region.width  # without the vertical scrollbar

    def _columns_now(self) -> list[tuple[int, int]]:
        width = self._width()
        if width != self._layout_width:
            self._layout = layout(self.columns, width)
            self._layout_width = width
            self._strips.clear()
        return self._layout

    def _line(self, cells: Sequence[Cell], base: Style) -> Strip:
        parts: list[Segment] = []
        cols = self._columns_now()
        console = self.app.console
        for n, (i, w) in enumerate(cols):
            cell = cells[i] if i < len(cells) else ""
            text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
            text.no_wrap = True
            if text.cell_len > w:
                text.truncate(w, overflow="ellipsis")
            text.align(text.justify if text.justify in ("left", "right", "center") else "left", w)
            if n:
                parts.append(Segment(" ", base))
            own = console.get_style(text.style) if text.style else None  # render() leaves the Text's own style out
            for seg in text.render(console):
                if seg.text:
                    style = own + seg.style if own and seg.style else (own or seg.style)
                    parts.append(Segment(seg.text, base + style if style else base))
        return Strip(parts, sum(w for _, w in cols) + max(len(cols) - 1, 0))

    def render_line(self, y: int) -> Strip:
        width = self._width()
        base = self.rich_style
        if y == 0:
            header = self.get_component_rich_style("live-table--header")
            strip = self._line([Text(c.label, style="") for c in self.columns], base + header)
            return strip.extend_cell_length(width, base + header).crop(0, width)
        row = int(self.scroll_offset.y) + y - 1
        if row >= len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[row]
        cells = self._cells[key]
        cached = self._strips.get(key)
        if cached is None or cached[0] != cells:
            cached = (cells, self._line(cells, base))
            self._strips[key] = cached
        strip = cached[1].extend_cell_length(width, base)
        if row == self._cursor:  # the cursor's colours over the cells' own
            cls = "live-table--cursor" if self.has_focus else "live-table--cursor-blurred"
            cursor = self.get_component_rich_style(cls)
            strip = Strip(list(Segment.apply_style(iter(strip), post_style=cursor)), strip.cell_length)
        return strip.crop(0, width)
