"""`:costs`: what the platform costs per IDC, cluster and pool (a day, a month, this month so
far), and the prepaid hosts about to expire, with renewal."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.engine.facade import Snapshot
from cockpit.engine.facade_hosts import CostsView
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import LiveTable

REFRESH_TICKS = 10


def money(x: float) -> Text:
    return Text(f"{x:,.0f}", justify="right")


class CostsScreen(ViewScreen):
    VIEW = "costs"
    ALIASES = ("cost", "money", "$")
    HELP = "Cost per IDC, cluster, pool; prepaid hosts expiring"

    BINDINGS = [Binding("n", "renew", "Renew", id="costs.renew")]
    ACTION_IDS = {"renew": "host.renew"}
    DEFAULT_CSS = """
    CostsScreen #breakdown { height: 2fr; }
    CostsScreen #expiring-title { height: 1; padding: 0 1; }
    CostsScreen #expiring { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._view: CostsView | None = None
        self._tick_seen = -REFRESH_TICKS

    def body(self) -> ComposeResult:
        yield LiveTable(
            [("Scope", "scope", 7), ("Name", "name", 10), ("Hosts", "hosts", 5), ("A day", "day", 9),
             ("A month", "month", 10), ("This month", "mtd", 10), ("Pay-as-you-go", "payg", 13)],
            id="breakdown",
        )
        yield Static("", id="expiring-title")
        yield LiveTable([("Host", "host", 16), ("Charge", "charge", 8), ("Expires", "expires", 12),
                         ("Days left", "left", 9), ("Price", "price", 8)], id="expiring")

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if self._view is None or snap.clock.tick - self._tick_seen >= REFRESH_TICKS:
            self._tick_seen = snap.clock.tick
            self.load()

    @work(thread=True, exclusive=True, group="costs")
    def load(self) -> None:
        view = self.cockpit_app.cockpit.costs()
        self.app.call_from_thread(self._loaded, view)

    def _loaded(self, view: CostsView) -> None:
        self._view = view
        self._paint()

    def apply_filter(self) -> None:
        self._paint()

    def _paint(self) -> None:
        v = self._view
        if v is None:
            return
        q = self.query_text.strip()
        self.query_one("#breakdown", LiveTable).sync([
            (f"{line.scope}/{line.name}", (line.scope, Text(line.name, style="bold" if line.scope == "idc" else ""),
                                          Text(str(line.hosts), justify="right"), money(line.per_day),
                                          money(line.per_month), money(line.month_to_date),
                                          money(line.by_charge.get("payg", 0.0))))
            for line in v.lines if not q or matches(q, f"{line.scope} {line.name}")
        ])
        tz = self.cockpit_app.cockpit.world.traffic.tz
        self.query_one("#expiring-title", Static).update(Text(
            f"Prepaid hosts expiring within {v.warn_days} days: {len(v.expiring)} "
            "(n renews the selected one; unrenewed hosts are released when they expire)",
            style="bold yellow" if v.expiring else ""))
        self.query_one("#expiring", LiveTable).sync([
            (h.name, (h.name, h.charge_type, datetime.fromtimestamp(h.expires, tz).strftime("%Y-%m-%d %H:%M"),
                      Text(f"{days:.1f}", justify="right", style="bold red" if days < 1 else "yellow"), money(h.price)))
            for h, days in v.expiring if not q or matches(q, f"{h.name} {h.charge_type} {h.pool} {h.idc}")
        ])

    def action_renew(self) -> None:
        key = self.query_one("#expiring", LiveTable).current_key()
        if not key:
            self.notify("select an expiring host", severity="warning")
            return
        app = self.cockpit_app
        app.perform("host.renew", f"Renew {key} for 1 month.", lambda: app.cockpit.renew_hosts([key], 1))
