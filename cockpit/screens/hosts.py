"""`:hosts`: every host (IDC, pool, hardware, allocation, up or down, initialisation), the pools
per IDC, and the moves between them; `d` or enter describes a host in full. Moves, borrowing and
giving back go through the shared pool; cloud hosts can be released or renewed; failed
initialisations retried.

Instant at thousands of hosts: the store is read in a thread, and only when a cheap fingerprint
says the hosts changed; each host's cells are built once per read (and kept when the host did
not change); a sort or a filter is a pass over prepared rows in a thread, shown in one update."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from cockpit.domain import World
from cockpit.engine.facade import Cockpit, HostView, Snapshot
from cockpit.engine.facade_hosts import MoveView, PoolView
from cockpit.screens.base import ViewScreen
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.describe import HostDescribe
from cockpit.widgets.live_table import Column, LiveTable
from cockpit.widgets.view_tabs import ViewTabs

CHECK_S = 2.0  # at most this often, ask the store whether the hosts changed (a read of a few ms)
# Reading every host again takes a while on a big platform (half a second at 20,000 hosts, more
# while the engine is busy): the next look waits long enough that keeping the view fresh costs
# at most this share of a core.
READ_SHARE = 0.2
# The last read of each facade's hosts: `:hosts` opened again shows it at once (as k9s shows its
# cache), then reads again only if the store's fingerprint moved on.
_LAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

STATE = {  # what the St column shows: being down matters most, then initialisation
    "pending": ("pend", "yellow"),
    "initialising": ("init", "yellow"),
    "failed": ("FAIL", "bold red"),
    "timed_out": ("TIME", "bold red"),
}
INIT_RANK = {"failed": 0, "timed_out": 0, "pending": 1, "initialising": 1}


def _alloc(h: HostView) -> float:
    """The tighter of CPU and memory reserved, as a fraction of the host."""
    return max(h.cpu_alloc / h.cores if h.cores else 0.0, h.mem_alloc / h.memory_gb if h.memory_gb else 0.0)


SORTS = {
    "name": lambda h: h.name,
    "alloc": lambda h: (-_alloc(h), h.name),
    "containers": lambda h: (-h.containers, h.name),
    "down first": lambda h: (h.alive, INIT_RANK.get(h.status, 2), h.name),
}
# The same orders, taken from the hosts in name order by a stable sort: ties keep name order, so
# the keys need not carry the name (a third of the time at 20,000 hosts).
AFTER_NAME = {
    "alloc": lambda h: -_alloc(h),
    "containers": lambda h: -h.containers,
    "down first": lambda h: (h.alive, INIT_RANK.get(h.status, 2)),
}


# Cells are shared between rows (the table copies a cell before it changes it): a read of
# thousands of hosts builds tuples of ready-made pieces, not thousands of new Text objects.
DOWN = Text("DOWN", style="bold red")
STATE_TEXT = {status: Text(text, style=style) for status, (text, style) in STATE.items()}
UP = Text("up", style="green")
PCT = [Text(f"{p}%", justify="right", style="yellow" if p >= 90 else "") for p in range(101)]
COUNTS = [Text(str(n), justify="right") for n in range(1000)]


def host_state(h: HostView) -> Text:
    if not h.alive:
        return DOWN
    return STATE_TEXT.get(h.status, UP)


_LABEL_TEXT: dict[tuple, str] = {}  # a platform has a few label sets: each is written out once


def labels_text(labels: dict[str, str]) -> str:
    try:
        key = tuple(labels.items())
        text = _LABEL_TEXT.get(key)
    except TypeError:  # a value that is not text (a store edited by hand): written out, not kept
        key, text = None, None
    if text is None:
        text = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if key is not None and len(_LABEL_TEXT) < 10_000:  # bounded, whatever the hosts' labels are
            _LABEL_TEXT[key] = text
    return text


def host_text(h: HostView) -> str:
    """What `/` searches: every column plus labels as key=value."""
    state = "up" if h.alive else "down"
    return (f"{h.name} {h.idc} {h.pool} {h.hardware} {h.source} {h.zone or ''} {state} {h.status} "
            f"{labels_text(h.labels)} " + " ".join(h.services))


def _pct(used: float, cap: float) -> Text:
    p = round(100 * used / cap) if cap else 0
    return PCT[p] if 0 <= p <= 100 else Text(f"{p}%", justify="right", style="bold red")


def _count(n: int) -> Text:
    return COUNTS[n] if 0 <= n < len(COUNTS) else Text(str(n), justify="right")


def host_cells(h: HostView) -> tuple:
    return (
        h.name, h.idc, h.pool, h.hardware,
        _count(h.containers),
        _pct(h.cpu_alloc, h.cores),
        _pct(h.mem_alloc, h.memory_gb),
        host_state(h),
        labels_text(h.labels),
        " ".join(f"{s}:{n}" for s, n in h.services.items()),
    )


# --- columns, sized from the world ------------------------------------------------------------


def _width(values, least: int, most: int) -> int:
    return max(least, min(most, max((len(v) for v in values), default=least)))


def host_columns(world: World) -> list[Column]:
    """At 80 columns the labels stay whole: the services go first, then the hardware class (the
    CPU and memory figures and the describe pane say it); narrower, the containers, memory, IDC
    and CPU go in that order. Host, pool, state and labels always stay."""
    label_sets = [g.labels for g in world.host_groups] + [t.ecs.labels for t in world.templates if t.ecs]
    names = [f"{g.name}-{g.count:04d}" for g in world.host_groups] + ["ecs-999-0000"]  # ECS: ecs-ORDER-NNNN
    return [
        Column("Host", "name", _width(names, 8, 32)),
        Column("IDC", "idc", _width([i.name for i in world.idcs], 3, 16), drop=4),
        Column("Pool", "pool", _width([p.name for p in world.pools], 4, 16)),
        Column("HW", "hw", _width([h.name for h in world.hardware], 2, 12), drop=8),
        Column("Ctr", "ctr", 3, drop=6),
        Column("CPU", "cpu", 4, drop=2),
        Column("Mem", "mem", 4, drop=5),
        Column("St", "st", 4),
        Column("Labels", "labels", _width([labels_text(x) for x in label_sets], 6, 40)),
        Column("Services", "svcs", None, drop=9),
    ]


def pool_columns(world: World) -> list[Column]:
    return [
        Column("Pool", "pool", _width([p.name for p in world.pools], 4, 16)),
        Column("Cluster", "cluster", _width([c.name for c in world.clusters], 7, 16), drop=2),
        Column("Kind", "kind", 7, drop=3),
        Column("IDC", "idc", _width([i.name for i in world.idcs], 3, 16)),
        Column("Up/all", "hosts", 9),
        Column("Ctrs", "ctrs", 6),
        Column("Init", "init", 5, drop=1),
    ]


def move_columns(world: World) -> list[Column]:
    pool_w = _width([p.name for p in world.pools], 4, 16)
    return [
        Column("When", "t", 8),
        Column("Host", "host", host_columns(world)[0].width),
        Column("From", "from", pool_w),
        Column("To", "to", pool_w),
        Column("Ctrs", "ctrs", 4, drop=1),
        Column("By", "by", 12, drop=2),
        Column("Why", "why", None),
    ]


# --- what a read of the store gives, prepared in the reading thread --------------------------


class HostsData:
    """One read of the hosts, ready to filter and sort: each host's cells and search text, and
    its order under every sort (sorted in the reading thread, so a sort key is a lookup). Its
    repr is short on purpose: Textual describes a worker by the repr of its arguments."""

    def __init__(self, version: tuple, hosts: dict[str, HostView], cells: dict[str, tuple], text: dict[str, str],
                 pools: list[tuple[str, tuple, str]], moves: list[tuple[str, tuple, str]],
                 moved_hosts: dict[str, str]):
        self.version = version
        self.hosts = hosts  # by name, in the store's order
        self.cells = cells
        self.text = text  # lower-case, what `/` searches
        self.pools = pools  # (key, cells, search text)
        self.moves = moves
        self.moved_hosts = moved_hosts  # move row key -> host
        by_name = sorted(hosts.values(), key=SORTS["name"])
        self.orders = {"name": [h.name for h in by_name]}
        self.orders.update({sort: [h.name for h in sorted(by_name, key=key)] for sort, key in AFTER_NAME.items()})

    def __repr__(self) -> str:
        return f"HostsData({len(self.hosts)} hosts)"


def prepare(version: tuple, hosts: list[HostView], pools: list[PoolView], moves: list[MoveView] | None,
            tz: tzinfo, previous: HostsData | None) -> HostsData:
    """Rows ready to filter and sort. A host that did not change keeps its cells (the same
    objects), so the table sees at once that its line is the same. `moves` None: the previous
    read's moves stand."""
    by_name = {h.name: h for h in hosts}
    cells, text = {}, {}
    old = previous.hosts if previous is not None else {}
    for name, h in by_name.items():
        was = old.get(name)
        if was is h or (was is not None and was == h):
            cells[name], text[name] = previous.cells[name], previous.text[name]
        else:
            cells[name], text[name] = host_cells(h), host_text(h).lower()
    pool_rows = [
        (f"{p.pool}/{p.idc}",
         (p.pool, p.cluster, p.kind, p.idc,
          Text(f"{p.hosts_alive}/{p.hosts_total}", justify="right",
               style="bold red" if p.hosts_alive < p.hosts_total else ""),
          Text(str(p.containers), justify="right"),
          Text(str(p.pending_init) if p.pending_init else "", justify="right", style="yellow")),
         f"{p.pool} {p.cluster} {p.kind} {p.idc}".lower())
        for p in pools
    ]
    if moves is None and previous is not None:
        return HostsData(version, by_name, cells, text, pool_rows, previous.moves, previous.moved_hosts)
    move_rows, moved = [], {}
    for k, m in enumerate(moves or []):
        key = str(k)
        moved[key] = m.host
        move_rows.append((key, (datetime.fromtimestamp(m.t, tz).strftime("%d %H:%M"), m.host, m.from_pool, m.to_pool,
                                Text(str(m.containers_moved), justify="right"), m.actor, m.reason),
                          f"{m.host} {m.from_pool} {m.to_pool} {m.reason} {m.actor}".lower()))
    return HostsData(version, by_name, cells, text, pool_rows, move_rows, moved)


def read_hosts(c: Cockpit, force: bool, previous: HostsData | None) -> HostsData | None:
    """In a thread: the hosts, if they changed since `previous` (always, with `force`); None when
    they did not. When only hosts' states moved (down, up, initialisation), only those are read."""
    version = c.hosts_version()
    if not force and previous is not None:
        if version == previous.version:
            return None
        if version[:2] == previous.version[:2]:  # the same hosts, pools and containers
            states = c.host_states()
            if states.keys() == previous.hosts.keys():
                hosts = [h if (h.alive, h.status) == states[h.name] else
                         replace(h, alive=states[h.name][0], status=states[h.name][1])
                         for h in previous.hosts.values()]
                return prepare(version, hosts, c.pools(hosts), None, c.world.traffic.tz, previous)
    hosts = c.hosts()
    return prepare(version, hosts, c.pools(hosts), c.moves(), c.world.traffic.tz, previous)


def prefetch(c: Cockpit) -> None:
    """In a thread, once the cockpit has started: read the hosts, so `:hosts` opened for the first
    time shows them at once (as when opened again) instead of reading thousands of hosts then."""
    if _LAST.get(c) is None:
        _LAST[c] = read_hosts(c, True, None)


@dataclass(frozen=True, repr=False)
class Paint:
    data: HostsData
    query: str
    sort: str

    def __repr__(self) -> str:
        return f"Paint({self.data!r}, {self.query!r}, {self.sort!r})"


@dataclass(frozen=True, repr=False)
class Shown:
    data: HostsData
    query: str
    sort: str
    hosts: list[tuple[str, tuple]]
    pools: list[tuple[str, tuple]]
    moves: list[tuple[str, tuple]]
    down: int
    failed: int

    def __repr__(self) -> str:
        return f"Shown({len(self.hosts)} of {self.data!r}, {self.query!r}, {self.sort!r})"


def compute_rows(p: Paint) -> Shown:
    """The rows that match the query, in the sort's order (a pass over prepared rows)."""
    words = p.query.lower().split()
    d = p.data

    def keep(text: str) -> bool:
        return all(w in text for w in words)

    order = d.orders[p.sort]
    names = [n for n in order if keep(d.text[n])] if words else order
    hosts = d.hosts
    down = sum(1 for n in names if not hosts[n].alive)
    failed = sum(1 for n in names if hosts[n].status in ("failed", "timed_out"))
    return Shown(
        d, p.query, p.sort, [(n, d.cells[n]) for n in names],
        [(k, c) for k, c, t in d.pools if keep(t)], [(k, c) for k, c, t in d.moves if keep(t)], down, failed,
    )


class HostsScreen(ViewScreen):
    VIEW = "hosts"
    ALIASES = ("h", "host", "no", "nodes", "pools")
    HELP = "Hosts, pools and moves; describe (d, enter), move, borrow, give back, release"
    CSS_PATH = "hosts.tcss"
    AUTO_FOCUS = "#hosts"

    # The keys that open a form or the describe pane are priority keys: they act as the app reads
    # them, so the keys typed right after them (a burst over a slow link) land in what they
    # opened, not in the table. (An Input's own characters are never taken by them.)
    BINDINGS = [
        Binding("d", "describe", "Describe", id="hosts.describe", priority=True),
        Binding("s", "sort", "Sort", id="hosts.sort"),
        Binding("m", "move", "Move", id="hosts.move", priority=True),
        Binding("b", "borrow", "Borrow from shared", id="hosts.borrow", show=False, priority=True),
        Binding("B", "give_back", "Give back to shared", id="hosts.give_back", show=False, priority=True),
        Binding("r", "retry_init", "Retry initialisation", id="hosts.retry_init", show=False),
        Binding("n", "renew", "Renew a month", id="hosts.renew", show=False),
        Binding("ctrl+d", "release", "Release cloud host", id="hosts.release", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._data: HostsData | None = None
        self._sort = "name"
        self._loading = False
        self._checked = 0.0
        self._read_s = 0.0  # how long the last full read took
        self._error: str | None = None
        self._summary_parts: list = []
        self.shown: Shown | None = None  # what the tables show now
        self.reads = 0  # full reads of the hosts this view made (a fingerprint that did not move: none)

    def body(self) -> ComposeResult:
        world = self.cockpit_app.cockpit.world
        yield Static("reading hosts…", id="summary")
        with ViewTabs(id="tabs"):
            with TabPane("Hosts", id="tab-hosts"):
                yield LiveTable(host_columns(world), id="hosts")
            with TabPane("Pools", id="tab-pools"):
                yield LiveTable(pool_columns(world), id="pools")
            with TabPane("Moves", id="tab-moves"):
                yield LiveTable(move_columns(world), id="moves")
        yield HostDescribe(id="describe")

    # --- reading the store (threads only) ------------------------------------------------

    def on_mount(self) -> None:
        # `]` and `[` switch tabs; the tab bar takes no focus, so focus (after the filter, after
        # the describe pane) always comes back to the table on show.
        for bar in self.query(Tabs):
            bar.can_focus = False
        last = _LAST.get(self.cockpit_app.cockpit)
        if last is not None:
            self._data = last
            self.show(compute_rows(Paint(last, "", self._sort)))
        self.reload(force=last is None)

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        """Each new tick (or coming back to the view): were the hosts changed? At most every
        CHECK_S; a failed first read is tried again at the next tick."""
        wait = max(CHECK_S, self._read_s / READ_SHARE)
        if self._data is None or not fresh or time.monotonic() - self._checked >= wait:
            self.reload(force=self._data is None)

    def reload(self, force: bool = False) -> None:
        """Read the hosts again if they changed (always, with `force`); one read at a time."""
        if self._loading:
            return
        self._loading = True
        self._checked = time.monotonic()
        data = self._data
        self._read(self.cockpit_app.cockpit, force, data,
                   Paint(data, self.query_text.strip(), self._sort) if data else None)

    @work(thread=True, group="hosts-read", exit_on_error=False, description="read the hosts")
    def _read(self, c: Cockpit, force: bool, previous: HostsData | None, paint: Paint | None) -> None:
        result: tuple[HostsData, Shown] | None = None
        error = None
        t0 = time.monotonic()
        try:
            data = read_hosts(c, force, previous)
            if data is not None:
                query, sort = (paint.query, paint.sort) if paint else ("", "name")
                result = (data, compute_rows(Paint(data, query, sort)))
        except Exception as e:  # a locked or damaged store: say so, keep what is shown
            error = f"{type(e).__name__}: {e}"
        self.on_loop(self._read_done, result, error, time.monotonic() - t0)

    def _read_done(self, result: tuple[HostsData, Shown] | None, error: str | None, took: float = 0.0) -> None:
        self._loading = False
        self._error = error
        if result is not None:
            data, shown = result
            self._read_s = took
            self.reads += 1
            self._data = _LAST[self.cockpit_app.cockpit] = data
            if not self.is_attached:  # the view was left meanwhile: the read is kept for next time
                return
            if shown.query == self.query_text.strip() and shown.sort == self._sort:
                self.show(shown)  # at once: no debounce, no second trip to a thread
            else:
                self.repaint()
            describing = self.query_one(HostDescribe).host
            if describing is not None:
                self._read_detail(describing)
        elif error is not None and self.is_attached:
            self._summary()

    # --- painting (base.ViewScreen: paint_state on the loop, compute in a thread, show) -------

    def paint_state(self) -> Paint | None:
        return Paint(self._data, self.query_text.strip(), self._sort) if self._data is not None else None

    def compute(self, state: Paint | None) -> Shown | None:
        return compute_rows(state) if state is not None else None

    def show(self, shown: Shown | None) -> None:
        if shown is None or (shown.data, shown.query, shown.sort) != (self._data, self.query_text.strip(), self._sort):
            return  # computed for what is no longer asked (older hosts, query or sort): a newer one is on its way
        self.shown = shown
        self.query_one("#hosts", LiveTable).sync(shown.hosts)
        self.query_one("#pools", LiveTable).sync(shown.pools)
        self.query_one("#moves", LiveTable).sync(shown.moves)
        self._summary(shown)

    def _summary(self, shown: Shown | None = None) -> None:
        if shown is not None:
            self._summary_parts = [
                f"{len(shown.hosts)} of {len(shown.data.hosts)} hosts",
                (f"  {shown.down} down" if shown.down else "", "bold red"),
                (f"  {shown.failed} failed init" if shown.failed else "", "bold red"),
                f"  sorted by {shown.sort}",
                (f"  filter: {shown.query}" if shown.query else "", "italic"),
            ]
        parts = list(self._summary_parts)
        if self._error:
            parts.append((f"  store: {self._error}", "bold red"))
        self.query_one("#summary", Static).update(Text.assemble(*parts) if parts else "", layout=False)

    def action_sort(self) -> None:
        """The next sort, shown at once: its order was prepared with the read, so this is one
        pass over the rows (a filter typed meanwhile goes through the debounced repaint)."""
        names = list(SORTS)
        self._sort = names[(names.index(self._sort) + 1) % len(names)]
        state = self.paint_state()
        if state is not None:
            self.show(compute_rows(state))

    # --- tabs and the describe pane ----------------------------------------------------------

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """`]` `[` (or a click): the pane's table takes the keys."""
        self._close_describe(refocus=False)
        tables = event.pane.query(LiveTable)
        if tables:
            tables.first().focus()

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def on_live_table_selected(self, event: LiveTable.Selected) -> None:
        if event.table.id == "hosts":
            self._open_describe(event.key)
        elif event.table.id == "moves" and self._data is not None:
            host = self._data.moved_hosts.get(event.key)
            if host:
                self._open_describe(host)

    def action_describe(self) -> None:
        pane = self.query_one(HostDescribe)
        if pane.host is not None:
            self._close_describe()
            return
        host = None
        if self._tab() == "tab-hosts":
            host = self.query_one("#hosts", LiveTable).current_key()
        elif self._tab() == "tab-moves" and self._data is not None:
            key = self.query_one("#moves", LiveTable).current_key()
            host = self._data.moved_hosts.get(key) if key else None
        if host is None:
            self.notify("select a host (Hosts or Moves tab) to describe", severity="warning", timeout=3)
            return
        self._open_describe(host)

    def _open_describe(self, host: str) -> None:
        pane = self.query_one(HostDescribe)
        pane.reading(host)
        self.add_class("-describing")
        self.set_focus(pane, scroll_visible=False)  # now: the keys typed right after `d` scroll it
        self._read_detail(host)

    def _read_detail(self, host: str) -> None:
        """Read `host` in full for the pane: the pane and the facade are looked up here, on the
        event loop; the thread only reads the store."""
        self._read_detail_in_thread(host, self.query_one(HostDescribe), self.cockpit_app.cockpit)

    @work(thread=True, group="hosts-describe", exit_on_error=False, description="read a host in full")
    def _read_detail_in_thread(self, host: str, pane: HostDescribe, c: Cockpit) -> None:
        try:
            detail = c.host_detail(host)
        except Exception as e:  # a locked or damaged store: the pane says so
            self.on_loop(pane.show_failure, host, f"{type(e).__name__}: {e}")
            return
        self.on_loop(pane.show_detail, host, detail, c.world.traffic.tz)


    def on_host_describe_close(self, message: HostDescribe.Close) -> None:
        self._close_describe()

    def _close_describe(self, refocus: bool = True) -> None:
        pane = self.query_one(HostDescribe)
        if pane.host is None:
            return
        pane.host = None
        self.remove_class("-describing")
        if refocus:
            tables = self.query(f"#{self._tab()} LiveTable")
            if tables:
                self.call_after_refresh(tables.first().focus)

    def handle_escape(self) -> bool:
        if self.query_one(HostDescribe).host is not None:
            self._close_describe()
            return True
        return super().handle_escape()

    # --- actions ------------------------------------------------------------------------

    ACTION_IDS = {"move": "pool.move", "borrow": "pool.move", "give_back": "pool.move", "retry_init": "init.retry",
                  "renew": "host.renew", "release": "host.release"}

    def _selected_host(self) -> HostView | None:
        """The host the user is on, in what is in view: the one described, else the selected row
        of the Hosts tab, or the host of the selected move on the Moves tab. The Pools tab has no
        host selected (a row of the Hosts tab out of view is not what the user is looking at)."""
        if self._data is None:
            return None
        key = self.query_one(HostDescribe).host
        if key is None and self._tab() == "tab-hosts":
            key = self.query_one("#hosts", LiveTable).current_key()
        elif key is None and self._tab() == "tab-moves":
            move = self.query_one("#moves", LiveTable).current_key()
            key = self._data.moved_hosts.get(move) if move else None
        return self._data.hosts.get(key) if key else None

    def _host_for(self, what: str, fits) -> HostView | None:
        """The selected host, if `fits(host)`; else say what to select, and where, in place."""
        h = self._selected_host()
        if h is None:
            where = "the Pools tab has no host selected: " if self._tab() == "tab-pools" else ""
            self.notify(f"{where}select {what} on the Hosts tab", severity="warning")
            return None
        if not fits(h):
            self.notify(f"{h.name} is not {what}: select one", severity="warning")
            return None
        return h

    def _selected_pool(self) -> tuple[str, str] | None:
        key = self.query_one("#pools", LiveTable).current_key()
        return tuple(key.split("/", 1)) if key else None  # type: ignore[return-value]

    def _pool_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.cockpit_app.cockpit.world.pools)

    def action_move(self) -> None:
        h = self._selected_host()
        sel = self._selected_pool() if self._tab() == "tab-pools" else None
        pool, idc = (h.pool, h.idc) if h else (sel if sel else ("", ""))
        app = self.cockpit_app
        fields = [Field("to_pool", "To pool", app.cockpit.world.shared_pool.name, self._pool_names()),
                  Field("hosts", "Hosts (comma-separated; empty: pick from a pool)", h.name if h else ""),
                  Field("from_pool", "…or from pool", pool, self._pool_names()),
                  Field("idc", "in IDC", idc), Field("count", "how many", "")]

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
        h = self._host_for("a host whose initialisation failed", lambda h: h.status in ("failed", "timed_out"))
        if h is None:
            return
        app = self.cockpit_app
        app.perform("init.retry", f"initialise {h.name} again", lambda: app.cockpit.retry_init([h.name]))

    def action_renew(self) -> None:
        h = self._host_for("a prepaid (monthly or yearly) cloud host", lambda h: h.charge_type in ("monthly", "yearly"))
        if h is None:
            return
        app = self.cockpit_app
        app.perform("host.renew", f"Renew {h.name} ({h.charge_type}) for 1 month.",
                    lambda: app.cockpit.renew_hosts([h.name], 1))

    def action_release(self) -> None:
        h = self._host_for("a cloud (ECS) host", lambda h: h.source == "ecs")
        if h is None:
            return
        app = self.cockpit_app
        app.perform("host.release", f"Release {h.name}: its {h.containers} containers are re-placed in {h.pool}, "
                    "then the instance is deleted.", lambda: app.cockpit.release_hosts([h.name]))
