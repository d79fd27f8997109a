"""The dashboard: per IDC and per pool, hosts, containers, allocation, CPU and QPS, live."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.engine.facade import Snapshot, TREND_H
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column, LiveTable
from cockpit.widgets.spark import human, spark

TREND_W = 16
TOTALS_SPARK_W = 14
SPEEDS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def pct_text(p: float, warn: float = 50.0, bad: float = 80.0) -> Text:
    style = "bold red" if p >= bad else "yellow" if p >= warn else ""
    return Text(f"{p:.0f}%", style=style, justify="right")


class DashboardScreen(ViewScreen):
    VIEW = "dashboard"
    ALIASES = ("dash", "d", "home")
    HELP = "Per IDC and pool: hosts, containers, CPU, QPS, 6 h trend"

    BINDINGS = [
        Binding("plus,equals_sign", "faster", "Faster clock", id="dashboard.faster"),
        Binding("minus", "slower", "Slower clock", id="dashboard.slower"),
        Binding("space", "pause", "Pause clock", id="dashboard.pause"),
        Binding("h", "hot_event", "Hot event…", id="dashboard.hot_event"),
    ]

    ACTION_IDS = {"faster": "sim.speed", "slower": "sim.speed", "pause": "sim.pause", "hot_event": "sim.hot_event"}

    CSS_PATH = "dashboard.tcss"

    def __init__(self) -> None:
        super().__init__()
        self._snap: Snapshot | None = None

    def body(self) -> ComposeResult:
        yield Static("loading…", id="totals")
        yield Static("", id="ticker")
        yield LiveTable(
            [
                Column("Scope", "scope", 17),
                Column("Hosts", "hosts", 9),  # that can take containers (up, initialised) / all
                Column("Ctrs", "ctrs", 5),
                Column("Alloc", "alloc", 5),
                Column("CPU", "cpu", 4),
                Column("QPS", "qps", 6, drop=1),
                Column("CPU last 6h", "trend", TREND_W, drop=2),
            ],
            id="scopes",
        )

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if snap.rows is None:
            return
        self._snap = snap
        self._paint()

    def apply_filter(self) -> None:
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        snap = self._snap
        if snap is None or snap.rows is None:
            return
        world = self.cockpit_app.cockpit.world
        end = snap.clock.t
        start = end - TREND_H * 3600
        by_scope = {r.scope: r for r in snap.rows}
        total = by_scope.get("all")
        if total is not None:
            tr = snap.trends.get("all")
            line = Text.assemble(
                ("Platform ", "bold"),
                self._hosts(total.hosts_alive, total.hosts_total),
                " hosts  ",
                f"{total.containers:,} ctrs  CPU ",
                pct_text(total.cpu_pct),
                f"  alloc {total.alloc_pct:.0f}%  QPS {human(total.qps)} ",
            )
            totals = self.query_one("#totals", Static)
            width = totals.content_size.width or self.app.size.width - 2  # before the first layout: the terminal's
            room = min(TOTALS_SPARK_W, width - line.cell_len)  # the trend gives way first
            if tr and room >= 4:
                line.append(spark(tr.t, tr.qps, room, start, end), "cyan")
            totals.update(line)
        if snap.last_event is not None:
            ev = snap.last_event
            when = datetime.fromtimestamp(ev.t, world.traffic.tz).strftime("%H:%M")
            style = "yellow" if ev.level == "warn" else "red" if ev.level == "error" else ""
            self.query_one("#ticker", Static).update(Text.assemble(f"{when} ", (ev.message, style)))
        shown = self._visible([r.scope for r in snap.rows if r.scope != "all"])
        rows = []
        for scope in shown:
            r = by_scope[scope]
            tr = snap.trends.get(scope)
            idc, _, pool = scope.partition("/")
            label = Text("  " + pool) if pool else Text(idc, style="bold")
            rows.append(
                (
                    scope,
                    (
                        label,
                        self._hosts(r.hosts_alive, r.hosts_total),
                        Text(f"{r.containers}", justify="right"),
                        Text(f"{r.alloc_pct:.0f}%", justify="right"),
                        pct_text(r.cpu_pct),
                        Text(human(r.qps), justify="right"),
                        Text(spark(tr.t, tr.cpu, TREND_W, start, end) if tr else "", style="green"),
                    ),
                )
            )
        self.query_one(LiveTable).sync(rows)

    def _visible(self, scopes: list[str]) -> list[str]:
        """Scopes matching the filter; an IDC stays when any of its pools matches."""
        if not self.query_text.strip():
            return scopes
        hit = {s for s in scopes if matches(self.query_text, s)}
        keep_idc = {s.split("/")[0] for s in hit}
        return [s for s in scopes if s in hit or (("/" not in s) and s in keep_idc)]

    @staticmethod
    def _hosts(alive: int, total: int) -> Text:
        return Text(f"{alive}/{total}", style="bold red" if alive < total else "", justify="right")

    # --- actions ------------------------------------------------------------------------

    def _speed_step(self, direction: int) -> None:
        snap = self.cockpit_app.last_snapshot
        current = snap.clock.speed if snap else 1
        options = [s for s in SPEEDS if (s > current if direction > 0 else s < current)]
        if not options:
            self.notify(f"already at x{current:g}", severity="warning")
            return
        target = options[0] if direction > 0 else options[-1]
        self.cockpit_app.perform("sim.speed", f"platform clock x{target:g}",
                                    lambda: self.cockpit_app.cockpit.set_speed(target))

    def action_faster(self) -> None:
        self._speed_step(+1)

    def action_slower(self) -> None:
        self._speed_step(-1)

    def action_pause(self) -> None:
        self.cockpit_app.toggle_pause()

    def action_hot_event(self) -> None:
        self.cockpit_app.open_hot_event()
