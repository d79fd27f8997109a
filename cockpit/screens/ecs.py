"""`:ecs`: ECS orders draining: progress, the live drain rate, the zone in use, the fallbacks
taken and the errors met; new orders (with their cost), pause, resume, cancel, retry."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.engine.facade import Snapshot
from cockpit.engine.facade_hosts import OrderView
from cockpit.screens.base import ViewScreen
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import LiveTable

STATE_STYLE = {"running": "bold cyan", "queued": "cyan", "paused": "yellow", "done": "green", "failed": "bold red",
               "cancelled": "dim"}


def bar(done: int, total: int, width: int = 10) -> str:
    filled = int(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


class EcsScreen(ViewScreen):
    VIEW = "ecs"
    ALIASES = ("orders", "cloud")
    HELP = "ECS orders: progress, drain rate, fallbacks, errors"

    BINDINGS = [
        Binding("o", "order", "Order", id="ecs.order"),
        Binding("p", "pause", "Pause/resume", id="ecs.pause"),
        Binding("x", "cancel_order", "Cancel", id="ecs.cancel"),
        Binding("r", "retry", "Retry", id="ecs.retry"),
    ]
    ACTION_IDS = {"order": "ecs.order", "pause": "ecs.pause", "cancel_order": "ecs.cancel", "retry": "ecs.retry"}
    DEFAULT_CSS = """
    EcsScreen #detail { height: 5; padding: 0 1; border-top: solid $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._orders: list[OrderView] = []

    def body(self) -> ComposeResult:
        yield LiveTable(
            [("#", "id", 3), ("Service", "svc", 8), ("Pool", "pool", 9), ("Progress", "bar", 10), ("Done", "done", 9),
             ("State", "state", 9), ("Zone", "zone", 12), ("Fb", "fb", 2), ("Err", "err", 3), ("/s", "rate", 5)],
            id="orders",
        )
        yield Static("", id="detail")

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.load()

    @work(thread=True, exclusive=True, group="ecs")
    def load(self) -> None:
        orders = self.cockpit_app.cockpit.ecs_orders()
        self.app.call_from_thread(self._loaded, orders)

    def _loaded(self, orders: list[OrderView]) -> None:
        self._orders = orders
        self._paint()

    def apply_filter(self) -> None:
        self._paint()

    def on_data_table_row_highlighted(self, event) -> None:
        self._paint_detail()

    def _paint(self) -> None:
        q = self.query_text.strip()
        rows = []
        for o in self._orders:
            if q and not matches(q, f"{o.id} {o.service} {o.pool} {o.state} {o.option} {o.instance_type}"):
                continue
            style = STATE_STYLE.get(o.state, "")
            rows.append((str(o.id), (
                Text(str(o.id), justify="right"), o.service, o.pool,
                Text(bar(o.created, o.count), style="green" if o.state == "done" else "cyan"),
                Text(f"{o.created}/{o.count}", justify="right"),
                Text(o.state, style=style), o.option.split("/")[0],
                Text(str(len(o.fallbacks)) if o.fallbacks else "", justify="right", style="yellow"),
                Text(str(o.errors) if o.errors else "", justify="right", style="red"),
                Text(f"{o.rate:.0f}" if o.rate else "", justify="right"),
            )))
        self.query_one(LiveTable).sync(rows)
        self._paint_detail()

    def _selected(self) -> OrderView | None:
        key = self.query_one(LiveTable).current_key()
        return next((o for o in self._orders if str(o.id) == key), None)

    def _paint_detail(self) -> None:
        o = self._selected()
        if o is None:
            self.query_one("#detail", Static).update(
                "No orders yet." if not self._orders else "")
            return
        when = datetime.fromtimestamp(o.real_created).strftime("%H:%M:%S")
        lines = [Text.assemble((f"order {o.id}", "bold"), f" by {o.actor} at {when}: {o.count} x {o.instance_type} "
                               f"for {o.pool} ({o.cost_per_month:,.0f}/month); using {o.option}",
                               (f"; {o.in_flight} in flight" if o.in_flight else ""))]
        for f in o.fallbacks[-2:]:
            lines.append(Text(f"fallback: {f['from']} → {f['to'] or 'nothing left'} ({f['code']})", style="yellow"))
        if o.reason:
            lines.append(Text(f"stopped: {o.reason}", style="bold red"))
        elif o.last_error:
            lines.append(Text(f"last error: {o.last_error}", style="red"))
        self.query_one("#detail", Static).update(Text("\n").join(lines))

    # --- actions ------------------------------------------------------------------------

    def action_order(self) -> None:
        app = self.cockpit_app
        templates = app.cockpit.ecs_templates()
        if not templates:
            self.notify("no template has ECS settings", severity="error")
            return
        choices = tuple(str(t[0]) for t in templates)
        note = "\n".join(f"{sid} {name}: {itype}, {hour:,.2f}/h ({month:,.0f}/month) a host"
                         for sid, name, _, itype, hour, month in templates)
        fields = [Field("sid", "Template (sid)", choices[0], choices), Field("count", "Hosts", "20"),
                  Field("pool", "Pool (empty: the template's)", "", tuple(p.name for p in app.cockpit.world.pools))]

        def chosen(v: dict | None) -> None:
            if v is None:
                return
            try:
                sid, count = int(v["sid"]), int(v["count"])
            except ValueError:
                self.notify("the template and the count must be numbers", severity="error")
                return
            t = next((x for x in templates if x[0] == sid), None)
            if t is None:
                self.notify(f"no template {sid} with ECS settings", severity="error")
                return
            body = (f"{count} x {t[3]} from template {sid} ({t[1]}) for pool {v['pool'] or 'the template’s'}.\n"
                    f"Cost: {count * t[4]:,.2f} an hour, {count * t[5]:,.0f} a month.")
            app.perform("ecs.order", body, lambda: app.cockpit.order_hosts(sid, count, v["pool"] or None))

        app.push_screen(FormScreen("Order ECS hosts", fields, submit="Order…", note=note), callback=chosen)

    def _on_selected(self, action_id: str, verb: str, call) -> None:
        o = self._selected()
        if o is None:
            self.notify("select an order", severity="warning")
            return
        app = self.cockpit_app
        app.perform(action_id, f"{verb} order {o.id} ({o.created}/{o.count} {o.instance_type})", lambda: call(o.id))

    def action_pause(self) -> None:
        o = self._selected()
        c = self.cockpit_app.cockpit
        if o is not None and o.state == "paused":
            self._on_selected("ecs.resume", "Resume", c.resume_order)
        else:
            self._on_selected("ecs.pause", "Pause", c.pause_order)

    def action_cancel_order(self) -> None:
        self._on_selected("ecs.cancel", "Cancel", self.cockpit_app.cockpit.cancel_order)

    def action_retry(self) -> None:
        self._on_selected("ecs.retry", "Retry from the first zone:", self.cockpit_app.cockpit.retry_order)
