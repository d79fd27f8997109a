"""The live table: instant at tens of thousands of rows, the cursor kept on its row, vi keys,
copying a row, and columns that give way to a narrow terminal least important first."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import App, ComposeResult

from cockpit.widgets.live_table import Column, LiveTable, layout

COLUMNS = [Column("Host", "name", 17), Column("IDC", "idc", 8, drop=1), Column("Pool", "pool", 9),
           Column("Labels", "labels", None, drop=2)]


class TableApp(App):
    CSS_PATH = "../cockpit/widgets/widgets.tcss"

    def __init__(self, rows):
        super().__init__()
        self.rows = rows
        self.highlighted: list[str | None] = []
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="t")

    def on_mount(self) -> None:
        t = self.query_one(LiveTable)
        t.sync(self.rows)
        t.focus()

    def on_live_table_highlighted(self, m: LiveTable.Highlighted) -> None:
        self.highlighted.append(m.key)

    def on_live_table_selected(self, m: LiveTable.Selected) -> None:
        self.selected.append(m.key)


def rows(n: int, prefix: str = "h"):
    return [(f"{prefix}{i:05d}", (f"{prefix}{i:05d}", "yongfeng", "feed-web", Text(f"role=web n={i}")))
            for i in range(n)]


def test_narrow_terminals_drop_the_least_important_columns_first():
    assert [i for i, _ in layout(COLUMNS, 80)] == [0, 1, 2, 3]
    assert dict(layout(COLUMNS, 80))[3] == 80 - 17 - 8 - 9 - 3  # the flexible column takes the rest
    assert [i for i, _ in layout(COLUMNS, 40)] == [0, 1, 2]  # labels go first
    assert [i for i, _ in layout(COLUMNS, 28)] == [0, 2]  # then the IDC
    assert [i for i, _ in layout(COLUMNS, 10)] == [0, 2]  # never the host and the pool


async def test_twenty_thousand_rows_sync_in_one_go_and_the_cursor_keeps_its_row():
    app = TableApp(rows(20_000))
    async with app.run_test(size=(80, 24)) as pilot:
        t = app.query_one(LiveTable)
        assert t.row_count == 20_000
        t.move_to_key("h12345")
        await pilot.pause()
        start = time.perf_counter()
        t.sync(list(reversed(rows(20_000))))  # a new order: no rebuild, one assignment
        took = time.perf_counter() - start
        assert t.current_key() == "h12345" and t.cursor_row == 20_000 - 1 - 12345
        assert took < 1.0  # generous: the point is that nothing per-row is drawn
        t.sync([r for r in rows(20_000) if r[0].endswith("5")])  # a filter
        assert t.current_key() == "h12345"
        kept = [r for r in rows(20_000) if r[0].endswith("0")]
        t.sync(kept)  # the row is filtered out: the first row, not a stranger at the old index
        assert t.current_key() == kept[0][0] and t.cursor_row == 0


async def test_vi_keys_move_and_g_G_jump():
    app = TableApp(rows(500))
    async with app.run_test(size=(80, 24)) as pilot:
        t = app.query_one(LiveTable)
        await pilot.press("j", "j", "j", "k")
        assert t.current_key() == "h00002"
        await pilot.press("G")
        assert t.current_key() == "h00499"
        await pilot.press("g")
        assert t.current_key() == "h00000"
        await pilot.press("pagedown")
        assert t.cursor_row == 22  # a page: the 23 visible rows less one
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == [t.current_key()]
        assert app.highlighted[-1] == t.current_key()


async def test_y_copies_the_row_as_tab_separated_text():
    app = TableApp(rows(3))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("j", "y")
        assert app.clipboard == "h00001\tyongfeng\tfeed-web\trole=web n=1"


async def test_only_visible_rows_are_drawn_and_they_show_their_cells():
    app = TableApp(rows(1000))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        lines = [app.screen._compositor.render_strips()[y].text for y in range(10)]
        assert lines[0].startswith("Host")
        assert "IDC" in lines[0] and "Labels" not in lines[0]  # 40 columns: the labels gave way
        assert lines[1].startswith("h00000") and lines[9].startswith("h00008")
