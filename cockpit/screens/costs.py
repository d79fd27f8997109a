"""`:costs`: what the platform costs per IDC, cluster and pool (a day, a month, this month so
far), and the prepaid hosts about to expire, with renewal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.core.costs import per_month
from cockpit.engine.facade import Snapshot
from cockpit.engine.facade_hosts import CostsView
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column, LiveTable

REFRESH_TICKS = 10

# Narrow terminals lose the pay-as-you-go part first, then this month so far; the daily and
# monthly rates stay.
BREAKDOWN = (
    Column("Scope", "scope", 7),
    Column("Name", "name", None),
    Column("Hosts", "hosts", 5),
    Column("A day", "day", 9),
    Column("A month", "month", 10),
    Column("This month", "mtd", 10, drop=1),
    Column("Pay-as-you-go", "payg", 13, drop=2),
)
# The expiry (platform time, the world's zone) and the days left always stay: they are why
# the table is here.
EXPIRING = (
    Column("Host", "host", None),
    Column("Pool", "pool", 10, drop=3),
    Column("Charge", "charge", 7, drop=2),
    Column("Expires", "expires", 16),
    Column("Days", "left", 5),
    Column("A month", "price", 9, drop=1),
)


def money(x: float) -> Text:
    return Text(f"{x:,.0f}", justify="right")


@dataclass(frozen=True)
class _Paint:
    view: CostsView
    query: str
    tz: tzinfo


class CostsScreen(ViewScreen):
    VIEW = "costs"
    ALIASES = ("cost", "money", "$")
    HELP = "Cost per IDC, cluster, pool; prepaid hosts expiring"
    CSS_PATH = "costs.tcss"

    BINDINGS = [Binding("n", "renew", "Renew for a month", id="costs.renew")]
    ACTION_IDS = {"renew": "host.renew"}

    def __init__(self) -> None:
        super().__init__()
        self._view: CostsView | None = None
        self._tick_seen = -REFRESH_TICKS

    def body(self) -> ComposeResult:
        yield LiveTable(BREAKDOWN, id="breakdown")
        yield Static("", id="expiring-title")
        yield LiveTable(EXPIRING, id="expiring")

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if self._view is None or snap.clock.tick - self._tick_seen >= REFRESH_TICKS:
            self._tick_seen = snap.clock.tick
            self.load()

    @work(thread=True, exclusive=True, group="costs", exit_on_error=False)  # a store error: the header says so
    def load(self) -> None:
        view = self.cockpit_app.cockpit.costs()
        self.on_loop(self._loaded, view)

    def _loaded(self, view: CostsView) -> None:
        self._view = view
        self.repaint()

    # --- painting (off the event loop) --------------------------------------------------

    def paint_state(self) -> _Paint | None:
        if self._view is None:
            return None
        return _Paint(self._view, self.query_text.strip(), self.cockpit_app.cockpit.world.traffic.tz)

    def compute(self, state: _Paint | None) -> tuple[list, Text, list] | None:
        if state is None:
            return None
        v, q = state.view, state.query
        lines = [
            (f"{line.scope}/{line.name}", (line.scope, Text(line.name, style="bold" if line.scope == "idc" else ""),
                                          Text(str(line.hosts), justify="right"), money(line.per_day),
                                          money(line.per_month), money(line.month_to_date),
                                          money(line.by_charge.get("payg", 0.0))))
            for line in v.lines if not q or matches(q, f"{line.scope} {line.name}")
        ]
        title = Text.assemble(
            (f"Prepaid hosts expiring within {v.warn_days} days: {len(v.expiring)}",
             "bold yellow" if v.expiring else ""),
            "; unrenewed ones are released" if v.expiring else "")
        expiring = [
            (h.name, (h.name, h.pool, h.charge_type,
                      datetime.fromtimestamp(h.expires, state.tz).strftime("%Y-%m-%d %H:%M"),  # platform time
                      Text(f"{days:.1f}", justify="right", style="bold red" if days < 1 else "yellow"),
                      money(per_month(h.charge_type, h.price))))
            for h, days in v.expiring if not q or matches(q, f"{h.name} {h.charge_type} {h.pool} {h.idc}")
        ]
        return lines, title, expiring

    def show(self, result: tuple[list, Text, list] | None) -> None:
        if result is None:
            return
        lines, title, expiring = result
        self.query_one("#breakdown", LiveTable).sync(lines)
        self.query_one("#expiring-title", Static).update(title)
        self.query_one("#expiring", LiveTable).sync(expiring)

    # --- actions ------------------------------------------------------------------------

    def action_renew(self) -> None:
        key = self.query_one("#expiring", LiveTable).current_key()
        if not key:
            self.notify("select an expiring host first (tab moves to its table)", severity="warning")
            return
        app = self.cockpit_app
        app.perform("host.renew", f"Renew {key} for 1 month.", lambda: app.cockpit.renew_hosts([key], 1))
