"""Host utilisation as a heat map: one character per host, before on top, after below.

Each cell is an upper half block whose foreground is the host's utilisation before the plan and
whose background is after it, so one map shows both and fits 500 hosts in 7 lines of 80. Without
colour (NO_COLOR) the cell's shade shows the utilisation after.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from cockpit.widgets.scroll_keys import scroll_bindings

LEVELS = [(0.5, "#2e7d32"), (0.7, "#9e9d24"), (0.85, "#ef6c00"), (0.95, "#c62828"), (9.0, "#6a1b9a")]
SHADES = " ░▒▓█"


def colour(u: float) -> str:
    return next(c for edge, c in LEVELS if u < edge)


def render(cells: list[tuple[str, float, float]], width: int, no_color: bool) -> Text:
    width = max(width, 10)
    out = Text()
    for i, (_, before, after) in enumerate(cells):
        if i and i % width == 0:
            out.append("\n")
        if no_color:
            out.append(SHADES[min(int(after * (len(SHADES) - 1) + 0.5), len(SHADES) - 1)])
        else:
            out.append("▀", Style(color=colour(before), bgcolor=colour(after)))
    return out


def legend(no_color: bool) -> Text:
    if no_color:
        return Text("one character per host, shade = utilisation after: " + " ".join(
            f"{s!r}<{int(e * 100)}%" for s, (e, _) in zip(SHADES, LEVELS[:4])))
    t = Text("top half: before, bottom half: after   ")
    prev = 0
    for edge, c in LEVELS:
        label = f"{prev}-{int(edge * 100)}%" if edge < 9 else f">{prev}%"
        t.append("■", Style(color=c))
        t.append(f" {label}  ")
        prev = int(edge * 100)
    return t


class HeatMap(Static):

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self._cells: list[tuple[str, float, float]] = []

    def show(self, cells: list[tuple[str, float, float]]) -> None:
        self._cells = cells
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        self.update(render(self._cells, self.size.width or 76, self.app.no_color))


class HeatScroll(VerticalScroll):
    """The heat map's pane: it scrolls with the keys every table moves with (j/k, g/G...)."""

    BINDINGS = scroll_bindings()
