"""`:hosts`: every host (IDC, pool, hardware, allocation, up or down, initialisation), the pools
per IDC, and the moves between them. Moves, borrowing and giving back go through the shared
pool; cloud hosts can be released or renewed; failed initialisations retried."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static, TabbedContent, TabPane

from cockpit.engine.facade import HostView, Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import LiveTable

REFRESH_TICKS = 5  # host rows cost more than the dashboard; refresh every few ticks

SORTS = {
    "name": lambda h: h.name,
    "alloc": lambda h: -(h.cpu_alloc / h.cores + h.mem_alloc / h.memory_gb),
    "containers": lambda h: -h.containers,
    "down first": lambda h: (h.alive, h.name),
}
STATE = {  # what the St column shows: being down matters most, then initialisation
    "pending": ("pend", "yellow"),
    "initialising": ("init", "yellow"),
    "failed": ("FAIL", "bold red"),
    "timed_out": ("TIME", "bold red"),
}


def host_state(h: HostView) -> Text:
    if not h.alive:
        return Text("DOWN", style="bold red")
    text, style = STATE.get(h.status, ("up", "green"))
    return Text(text, style=style)


def host_text(h: HostView) -> str:
    """What `/` searches: every column plus labels as key=value."""
    labels = " ".join(f"{k}={v}" for k, v in h.labels.items())
    state = "up" if h.alive else "down"
    return f"{h.name} {h.idc} {h.pool} {h.hardware} {h.source} {h.zone or ''} {state} {h.status} {labels} " + " ".join(h.services)


class HostsScreen(ViewScreen):
    VIEW = "hosts"
    ALIASES = ("h", "host", "no", "nodes", "pools")
    HELP = "Hosts, pools and moves; move, borrow, give back, release"

    BINDINGS = [
        Binding("s", "sort", "Sort", id="hosts.sort"),
        Binding("m", "move", "Move", id="hosts.move"),
        Binding("b", "borrow", "Borrow", id="hosts.borrow"),
        Binding("g", "give_back", "Give back", id="hosts.give_back"),
        Binding("r", "retry_init", "Retry init", id="hosts.retry_init"),
        Binding("n", "renew", "Renew", id="hosts.renew"),
        Binding("d", "release", "Release", id="hosts.release"),
    ]

    DEFAULT_CSS = """
    HostsScreen #summary { height: 1; padding: 0 1; }
    HostsScreen TabbedContent { height: 1fr; }
    HostsScreen TabPane { padding: 0; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._hosts: list[HostView] = []
        self._by_name: dict[str, HostView] = {}
        self._pools = []
        self._moves = []
        self._tick_seen = -REFRESH_TICKS
        self._sort = "name"

    def body(self) -> ComposeResult:
        yield Static("loading hosts…", id="summary")
        with TabbedContent(id="tabs"):
            with TabPane("Hosts", id="tab-hosts"):
                yield LiveTable(
                    [("Host", "name", 17), ("IDC", "idc", 8), ("Pool", "pool", 9), ("HW", "hw", 7),
                     ("Ctr", "ctr", 3), ("CPU", "cpu", 5), ("Mem", "mem", 6), ("St", "st", 4), ("Labels", "labels", None)],
                    id="hosts",
                )
            with TabPane("Pools", id="tab-pools"):
                yield LiveTable(
                    [("Pool", "pool", 9), ("Cluster", "cluster", 8), ("Kind", "kind", 7), ("IDC", "idc", 8),
                     ("Hosts", "hosts", 9), ("Ctrs", "ctrs", 5), ("Init", "init", 4)],
                    id="pools",
                )
            with TabPane("Moves", id="tab-moves"):
                yield LiveTable(
                    [("When", "t", 11), ("Host", "host", 17), ("From", "from", 9), ("To", "to", 9),
                     ("Why", "why", 9), ("By", "by", 10), ("Ctrs", "ctrs", 4)],
                    id="moves",
                )

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if not self._hosts or snap.clock.tick - self._tick_seen >= REFRESH_TICKS:
            self._tick_seen = snap.clock.tick
            self.load()

    @work(thread=True, exclusive=True, group="hosts")
    def load(self) -> None:
        c = self.cockpit_app.cockpit
        hosts = c.hosts()
        self.app.call_from_thread(self._loaded, hosts, c.pools(hosts), c.moves())

    def _loaded(self, hosts, pools, moves) -> None:
        self._hosts, self._pools, self._moves = hosts, pools, moves
        self._by_name = {h.name: h for h in hosts}
        self._paint()

    def apply_filter(self) -> None:
        self._paint()

    def action_sort(self) -> None:
        names = list(SORTS)
        self._sort = names[(names.index(self._sort) + 1) % len(names)]
        self.notify(f"sorted by {self._sort}", timeout=2)
        self._paint()

    def _paint(self) -> None:
        q = self.query_text.strip()
        shown = [h for h in self._hosts if not q or matches(q, host_text(h))]
        shown.sort(key=SORTS[self._sort])
        down = sum(1 for h in shown if not h.alive)
        failed = sum(1 for h in shown if h.status in ("failed", "timed_out"))
        self.query_one("#summary", Static).update(Text.assemble(
            f"{len(shown)} of {len(self._hosts)} hosts",
            (f"  {down} down" if down else "", "bold red"),
            (f"  {failed} failed init" if failed else "", "bold red"),
            f"  sorted by {self._sort}",
            (f"  filter: {q}" if q else "", "italic"),
        ))
        self.query_one("#hosts", LiveTable).sync([(h.name, self._cells(h)) for h in shown])
        self.query_one("#pools", LiveTable).sync([
            (f"{p.pool}/{p.idc}", (p.pool, p.cluster, p.kind, p.idc,
                                   Text(f"{p.hosts_alive}/{p.hosts_total}", justify="right",
                                        style="bold red" if p.hosts_alive < p.hosts_total else ""),
                                   Text(str(p.containers), justify="right"),
                                   Text(str(p.pending_init) if p.pending_init else "", justify="right", style="yellow")))
            for p in self._pools if not q or matches(q, f"{p.pool} {p.cluster} {p.kind} {p.idc}")
        ])
        tz = self.cockpit_app.cockpit.world.traffic.tz
        self.query_one("#moves", LiveTable).sync([
            (f"{k}", (datetime.fromtimestamp(m.t, tz).strftime("%d %H:%M"), m.host, m.from_pool, m.to_pool, m.reason,
                      m.actor, Text(str(m.containers_moved), justify="right")))
            for k, m in enumerate(self._moves)
            if not q or matches(q, f"{m.host} {m.from_pool} {m.to_pool} {m.reason} {m.actor}")
        ])

    @staticmethod
    def _cells(h: HostView) -> tuple:
        return (
            h.name, h.idc, h.pool, h.hardware,
            Text(str(h.containers), justify="right"),
            Text(f"{h.cpu_alloc:g}/{h.cores}", justify="right"),
            Text(f"{h.mem_alloc:g}/{h.memory_gb}", justify="right"),
            host_state(h),
            " ".join(f"{k}={v}" for k, v in sorted(h.labels.items())),
        )

    # --- actions ------------------------------------------------------------------------

    ACTION_IDS = {"move": "pool.move", "borrow": "pool.move", "give_back": "pool.move", "retry_init": "init.retry",
                  "renew": "host.renew", "release": "host.release"}

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _selected_host(self) -> HostView | None:
        key = self.query_one("#hosts", LiveTable).current_key()
        return self._by_name.get(key) if key else None

    def _selected_pool(self) -> tuple[str, str] | None:
        key = self.query_one("#pools", LiveTable).current_key()
        return tuple(key.split("/", 1)) if key else None  # type: ignore[return-value]

    def _pool_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.cockpit_app.cockpit.world.pools)

    def action_move(self) -> None:
        h = self._selected_host() if self._tab() == "tab-hosts" else None
        app = self.cockpit_app
        fields = [Field("to_pool", "To pool", app.cockpit.world.shared_pool.name, self._pool_names()),
                  Field("hosts", "Hosts (comma-separated; empty: pick from a pool)", h.name if h else ""),
                  Field("from_pool", "…or from pool", h.pool if h else "", self._pool_names()),
                  Field("idc", "in IDC", h.idc if h else ""), Field("count", "how many", "")]

        def chosen(v: dict | None) -> None:
            if v is None:
                return
            hosts = [x.strip() for x in v["hosts"].split(",") if x.strip()]
            try:
                count = int(v["count"]) if v["count"] else None
            except ValueError:
                self.notify("the count must be a whole number", severity="error")
                return
            kw = dict(to_pool=v["to_pool"], hosts=hosts or None, from_pool=v["from_pool"] or None,
                      idc=v["idc"] or None, count=count)
            what = (f"Move {', '.join(hosts[:3])}{'…' if len(hosts) > 3 else ''} to {v['to_pool']}" if hosts
                    else f"Move {count} hosts of {v['from_pool']} in {v['idc'] or 'any IDC'} to {v['to_pool']}")
            app.perform("pool.move", what + ".\nTheir containers are re-placed in their pool first.",
                        lambda: app.cockpit.move_hosts(**kw))

        app.push_screen(FormScreen("Move hosts", fields, submit="Move…"), callback=chosen)

    def _shared_move(self, borrow: bool) -> None:
        sel = self._selected_pool() if self._tab() == "tab-pools" else None
        h = self._selected_host()
        pool, idc = sel if sel else ((h.pool, h.idc) if h else ("", ""))
        app = self.cockpit_app
        shared = app.cockpit.world.shared_pool.name
        title = f"Borrow hosts from {shared}" if borrow else f"Give hosts back to {shared}"
        fields = [Field("pool", "Pool", pool, self._pool_names()), Field("idc", "IDC", idc), Field("count", "How many", "10")]

        def chosen(v: dict | None) -> None:
            if v is None:
                return
            try:
                count = int(v["count"])
            except ValueError:
                self.notify("the count must be a whole number", severity="error")
                return
            src, dst = (shared, v["pool"]) if borrow else (v["pool"], shared)
            app.perform("pool.move", f"{title}: {count} hosts, {src} → {dst} in {v['idc'] or 'any IDC'}.",
                        lambda: app.cockpit.move_hosts(to_pool=dst, from_pool=src, idc=v["idc"] or None, count=count,
                                                       reason="borrow" if borrow else "give back"))

        app.push_screen(FormScreen(title, fields, submit="Move…"), callback=chosen)

    def action_borrow(self) -> None:
        self._shared_move(borrow=True)

    def action_give_back(self) -> None:
        self._shared_move(borrow=False)

    def action_retry_init(self) -> None:
        h = self._selected_host()
        if h is None or h.status not in ("failed", "timed_out"):
            self.notify("select a host whose initialisation failed", severity="warning")
            return
        app = self.cockpit_app
        app.perform("init.retry", f"initialise {h.name} again", lambda: app.cockpit.retry_init([h.name]))

    def action_renew(self) -> None:
        h = self._selected_host()
        if h is None or h.charge_type not in ("monthly", "yearly"):
            self.notify("select a prepaid (monthly or yearly) cloud host", severity="warning")
            return
        app = self.cockpit_app
        app.perform("host.renew", f"Renew {h.name} ({h.charge_type}) for 1 month.",
                    lambda: app.cockpit.renew_hosts([h.name], 1))

    def action_release(self) -> None:
        h = self._selected_host()
        if h is None or h.source != "ecs":
            self.notify("select a cloud (ECS) host", severity="warning")
            return
        app = self.cockpit_app
        app.perform("host.release", f"Release {h.name}: its {h.containers} containers are re-placed in {h.pool}, "
                    "then the instance is deleted.", lambda: app.cockpit.release_hosts([h.name]))
