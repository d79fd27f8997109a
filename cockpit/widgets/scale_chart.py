"""A line chart of `:scale`'s series (plotext through textual-plotext): one or two panels sharing
the x axis, each with a left and a right y axis and an optional target line. The panels after the
first show only when the widget is tall enough to read them; ticks thin out when it is narrow.
With no data it says why, in words, instead of drawing empty axes."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from cockpit.widgets.scale_rows import ChartSpec, Panel

PANEL_MIN_ROWS = 6  # a panel shorter than this is axes and labels with no room for the lines
TICK_WIDTH = 7  # "HH:MM" and a gap


class ScaleChart(PlotextPlot):
    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._spec: ChartSpec | None = None
        self._note = ""

    def plot(self, spec: ChartSpec | None, note: str = "") -> None:
        """Show `spec`, or `note` when there is nothing to draw."""
        if spec == self._spec and note == self._note:
            return
        self._spec, self._note = spec, note
        self.refresh()

    @property
    def spec(self) -> ChartSpec | None:
        return self._spec

    def render(self) -> RenderResult:
        if self._spec is None:
            return Text(self._note, style="dim")
        self._draw(self._spec)
        return super().render()

    def _draw(self, spec: ChartSpec) -> None:
        plt = self.plt
        plt.clear_figure()
        height = self.size.height
        panels = [p for k, p in enumerate(spec.panels) if k == 0 or height >= PANEL_MIN_ROWS * (k + 1)]
        ticks = _thinned(spec.ticks, self.size.width)
        if len(panels) > 1:
            plt.subplots(len(panels), 1)
        for k, panel in enumerate(panels):
            target = plt.subplot(k + 1, 1) if len(panels) > 1 else plt
            target.title(spec.title if k == 0 else "")
            _panel(target, spec, panel, ticks if k == len(panels) - 1 else ())

    def chart_text(self) -> str:
        """The chart as plain text (what a test or a screen reader sees)."""
        if self._spec is None:
            return self._note
        self._draw(self._spec)
        self.plt.plotsize(max(self.size.width, 20), max(self.size.height, 5))
        return Text.from_ansi(self.plt.build()).plain


def _panel(plt, spec: ChartSpec, panel: Panel, ticks: tuple[tuple[float, str], ...]) -> None:
    for s in panel.series:
        plt.plot(list(spec.x), list(s.values), label=s.label, color=s.color, yside=s.side, marker="braille")
    if panel.hline is not None:  # drawn as a line of its own: plotext's horizontal_line keeps to the left axis
        value, side, color = panel.hline
        plt.plot([spec.x[0], spec.x[-1]], [value, value], label=f"target {value:g}", color=color, yside=side,
                 marker="braille")
    if panel.right_max is not None and any(s.side == "right" for s in panel.series):
        plt.ylim(0, panel.right_max, yside="right")
    # No axis labels: the legend names each line and its axis (L, R); rows are scarce.
    if ticks:
        plt.xticks([t for t, _ in ticks], [label for _, label in ticks])
    else:  # the panel below carries the times
        plt.xticks([])
    plt.xlim(spec.x[0], spec.x[-1])


def _thinned(ticks: tuple[tuple[float, str], ...], width: int) -> tuple[tuple[float, str], ...]:
    room = max(2, (width - 12) // TICK_WIDTH)  # the y axes' labels take about 12 columns
    if len(ticks) <= room:
        return ticks
    step = -(-len(ticks) // room)
    return ticks[::step]
