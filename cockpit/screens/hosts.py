"""`:hosts`: every host with its IDC, pool, hardware, what is allocated on it, and whether it is up."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.engine.facade import HostView, Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import LiveTable

REFRESH_TICKS = 5  # host rows cost more than the dashboard; refresh every few ticks

SORTS = {
    "name": lambda h: h.name,
    "alloc": lambda h: -(h.cpu_alloc / h.cores + h.mem_alloc / h.memory_gb),
    "containers": lambda h: -h.containers,
    "down first": lambda h: (h.alive, h.name),
}


def host_text(h: HostView) -> str:
    """What `/` searches: every column plus labels as key=value."""
    labels = " ".join(f"{k}={v}" for k, v in h.labels.items())
    state = "up" if h.alive else "down"
    return f"{h.name} {h.idc} {h.pool} {h.hardware} {h.source} {h.zone or ''} {state} {h.status} {labels} " + " ".join(h.services)


class HostsScreen(ViewScreen):
    VIEW = "hosts"
    ALIASES = ("h", "host", "no", "nodes")
    HELP = "Every host: IDC, pool, hardware, allocation, up or down"

    BINDINGS = [Binding("s", "sort", "Sort", id="hosts.sort")]

    DEFAULT_CSS = """
    HostsScreen #summary { height: 1; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._hosts: list[HostView] = []
        self._tick_seen = -REFRESH_TICKS
        self._sort = "name"
        self._loading = False

    def body(self) -> ComposeResult:
        yield Static("loading hosts…", id="summary")
        yield LiveTable(
            [
                ("Host", "name", 17),
                ("IDC", "idc", 8),
                ("Pool", "pool", 9),
                ("HW", "hw", 7),
                ("Ctr", "ctr", 3),
                ("CPU", "cpu", 5),
                ("Mem", "mem", 6),
                ("St", "st", 4),
                ("Labels", "labels", None),
            ],
            id="hosts",
        )

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if not self._hosts or snap.clock.tick - self._tick_seen >= REFRESH_TICKS:
            self._tick_seen = snap.clock.tick
            self.load()

    @work(thread=True, exclusive=True, group="hosts")
    def load(self) -> None:
        hosts = self.cockpit_app.cockpit.hosts()
        self.app.call_from_thread(self._loaded, hosts)

    def _loaded(self, hosts: list[HostView]) -> None:
        self._hosts = hosts
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
        self.query_one("#summary", Static).update(
            Text.assemble(
                f"{len(shown)} of {len(self._hosts)} hosts",
                (f"  {down} down" if down else "", "bold red"),
                f"  sorted by {self._sort}",
                (f"  filter: {q}" if q else "", "italic"),
            )
        )
        self.query_one(LiveTable).sync([(h.name, self._cells(h)) for h in shown])

    @staticmethod
    def _cells(h: HostView) -> tuple:
        return (
            h.name,
            h.idc,
            h.pool,
            h.hardware,
            Text(str(h.containers), justify="right"),
            Text(f"{h.cpu_alloc:g}/{h.cores}", justify="right"),
            Text(f"{h.mem_alloc:g}/{h.memory_gb}", justify="right"),
            Text("up", style="green") if h.alive else Text("DOWN", style="bold red"),
            " ".join(f"{k}={v}" for k, v in sorted(h.labels.items())),
        )
