"""`:ecs`: ECS orders draining: progress, the live drain rate, the zone in use, the fallbacks
taken and the errors met; new orders (with their cost), pause, resume, cancel, retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.core.costs import per_hour, per_month
from cockpit.domain import Template
from cockpit.engine.facade_hosts import OrderView
from cockpit.screens.base import PolledView
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column, LiveTable

STATE_STYLE = {"running": "bold cyan", "queued": "cyan", "paused": "yellow", "done": "green", "failed": "bold red",
               "cancelled": "dim"}
MAX_ORDER = 10_000  # hosts in one order (the facade refuses more)

# At 80 columns every column fits; narrower, the progress bar goes first (Created says the same),
# then the service (the pool names it), the fallback count and the zone (both in the details
# below); the order, its pool, progress, state and errors always stay.
COLUMNS = (
    Column("#", "id", 4),
    Column("Service", "svc", 8, drop=5),
    Column("Pool", "pool", None),
    Column("Done", "bar", 6, drop=6),
    Column("Created", "done", 9),
    Column("State", "state", 9),
    Column("Zone", "zone", 12, drop=3),
    Column("Fb", "fb", 2, drop=4),
    Column("Err", "err", 4),
    Column("/s", "rate", 5, drop=1),
)


def bar(done: int, total: int, width: int = 6) -> str:
    filled = int(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


@dataclass(frozen=True)
class _Paint:
    orders: list[OrderView]
    query: str


class EcsScreen(PolledView):
    VIEW = "ecs"
    ALIASES = ("orders", "cloud")
    HELP = "ECS orders: progress, drain rate, fallbacks, errors"
    CSS_PATH = "ecs.tcss"

    BINDINGS = [
        Binding("o", "order", "Order hosts…", id="ecs.order"),
        Binding("p", "pause", "Pause/resume", id="ecs.pause"),
        Binding("x", "cancel_order", "Cancel the order", show=False, id="ecs.cancel"),
        Binding("r", "retry", "Retry the order", show=False, id="ecs.retry"),
    ]
    ACTION_IDS = {"order": "ecs.order", "pause": "ecs.pause", "cancel_order": "ecs.cancel", "retry": "ecs.retry"}

    def __init__(self) -> None:
        super().__init__()
        self._orders: list[OrderView] = []
        self._by_key: dict[str, OrderView] = {}
        self._loaded_once = False

    def body(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="orders")
        yield Static("", id="detail")

    @work(thread=True, exclusive=True, group="ecs", exit_on_error=False)  # a store error: the header says so
    def load(self) -> None:
        orders = self.cockpit_app.cockpit.ecs_orders()
        self.on_loop(self._loaded, orders)

    def _loaded(self, orders: list[OrderView]) -> None:
        if orders == self._orders and self._loaded_once:
            return
        self._orders, self._loaded_once = orders, True
        self.repaint()

    # --- painting (off the event loop) --------------------------------------------------

    def paint_state(self) -> _Paint:
        return _Paint(self._orders, self.query_text.strip())

    def compute(self, state: _Paint) -> tuple[list, dict[str, OrderView]]:
        rows, by_key = [], {}
        for o in state.orders:
            if state.query and not matches(state.query, f"{o.id} {o.service} {o.pool} {o.state} {o.option} "
                                                        f"{o.instance_type}"):
                continue
            by_key[str(o.id)] = o
            rows.append((str(o.id), _cells(o)))
        return rows, by_key

    def show(self, result: tuple[list, dict[str, OrderView]]) -> None:
        rows, self._by_key = result
        self.query_one(LiveTable).sync(rows)
        self._paint_detail()

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        self._paint_detail()

    def _selected(self) -> OrderView | None:
        key = self.query_one(LiveTable).current_key()
        return self._by_key.get(key) if key is not None else None

    def _paint_detail(self) -> None:
        o = self._selected()
        detail = self.query_one("#detail", Static)
        if o is None:
            detail.update("No orders yet: o orders hosts from a template." if not self._orders
                          else "No order matches the filter.")
            return
        detail.update(Text("\n").join(order_detail(o, self.cockpit_app.cockpit.world.traffic.tz)))

    # --- actions ------------------------------------------------------------------------

    def action_order(self) -> None:
        self._read_templates()

    @work(thread=True, exclusive=True, group="ecs-templates", exit_on_error=False)
    def _read_templates(self) -> None:
        try:
            templates = [t for _, t in sorted(self.cockpit_app.cockpit.catalog().templates.items()) if t.ecs]
        except Exception as e:  # a damaged or unreachable store: say so, keep the view
            self.on_loop(self.notify, f"cannot read the templates: {type(e).__name__}: {e}",
                                      severity="error")
            return
        self.on_loop(self._order_form, templates)

    def _order_form(self, templates: list[Template]) -> None:
        app = self.cockpit_app
        if not templates:
            self.notify("no template has ECS settings: nothing to order from", severity="error")
            return
        pools = tuple(p.name for p in app.cockpit.world.pools)
        note = "\n".join(f"{t.sid} {t.name} → {t.pool}: {t.ecs.instance_type} {_hour(t):,.2f}/h each"
                         for t in templates)
        choices = tuple(str(t.sid) for t in templates)
        fields = [Field("sid", "Template (sid)", choices[0], choices), Field("count", "Hosts", "20"),
                  Field("pool", "Pool (empty: the template's own)", "", pools)]

        def chosen(v: dict | None) -> None:
            if v is not None:
                self._confirm_order(v, {t.sid: t for t in templates}, pools)

        app.push_screen(FormScreen("Order ECS hosts", fields, submit="Order…", note=note), callback=chosen)

    def _confirm_order(self, v: dict, templates: dict[int, Template], pools: tuple[str, ...]) -> None:
        """The form's answer, checked; then the order and its cost, to confirm."""
        try:
            sid, count = int(v["sid"]), int(v["count"])
        except ValueError:
            self.notify(f"the template and the count must be whole numbers, got {v['sid']!r} and {v['count']!r}",
                        severity="error")
            return
        t = templates.get(sid)
        if t is None:
            self.notify(f"no template {sid} with ECS settings (templates: {', '.join(map(str, templates))})",
                        severity="error")
            return
        if not 1 <= count <= MAX_ORDER:
            self.notify(f"the count must be from 1 to {MAX_ORDER:,}, got {count:,}", severity="error")
            return
        pool = v["pool"] or t.pool
        if pool not in pools:
            self.notify(f"no pool named {pool!r} (pools: {', '.join(pools)})", severity="error")
            return
        body = (f"{count} x {t.ecs.instance_type} from template {sid} ({t.name}) for pool {pool}.\n"
                f"Cost: {count * _hour(t):,.2f} an hour, {count * _month(t):,.0f} a month.")
        app = self.cockpit_app
        app.perform("ecs.order", body, lambda: app.cockpit.order_hosts(sid, count, pool))

    def _on_selected(self, action_id: str, verb: str, call) -> None:
        o = self._selected()
        if o is None:
            self.notify("select an order first", severity="warning")
            return
        app = self.cockpit_app
        app.perform(action_id, f"{verb} order {o.id} ({o.created}/{o.count} {o.instance_type} for {o.pool})",
                    lambda: call(o.id))

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


def _hour(t: Template) -> float:
    return per_hour(t.ecs.charge.type, t.ecs.charge.price)


def _month(t: Template) -> float:
    return per_month(t.ecs.charge.type, t.ecs.charge.price)


def _cells(o: OrderView) -> tuple:
    return (
        Text(str(o.id), justify="right"), o.service, o.pool,
        Text(bar(o.created, o.count), style="green" if o.state == "done" else "cyan"),
        Text(f"{o.created}/{o.count}", justify="right"),
        Text(o.state, style=STATE_STYLE.get(o.state, "")), o.option.split("/")[0],
        Text(str(len(o.fallbacks)) if o.fallbacks else "", justify="right", style="yellow"),
        Text(str(o.errors) if o.errors else "", justify="right", style="red"),
        Text(f"{o.rate:.0f}" if o.rate else "", justify="right"),
    )


def order_detail(o: OrderView, tz) -> list[Text]:
    """The selected order, a line each: what and for whom, when (platform time, with the wall clock
    beside it to match the cloud's own logs), where, the last fallbacks, why it stopped."""
    placed = datetime.fromtimestamp(o.created_t, tz).strftime("%a %d %b %H:%M:%S")
    real = datetime.fromtimestamp(o.real_created).astimezone().strftime("%m-%d %H:%M:%S %Z")
    lines = [
        Text.assemble((f"order {o.id}", "bold"), f": {o.count} x {o.instance_type} for pool {o.pool}, "
                      f"{o.cost_per_month:,.0f} a month, by {o.actor}"),
        Text(f"placed {placed} (real {real})" + (f"; {o.in_flight} in flight" if o.in_flight else "")),
        Text(f"using {o.option}"),
    ]
    for f in o.fallbacks[-2:]:
        lines.append(Text(f"fallback: {f['from']} → {f['to'] or 'nothing left'} ({f['code']})", style="yellow"))
    if o.reason:
        lines.append(Text(f"stopped: {o.reason}", style="bold red"))
    elif o.last_error:
        lines.append(Text(f"last error: {o.last_error}", style="red"))
    return lines
