"""`:backends`: how each backend last answered the engine (the store, the cloud API, each host's
container engine, the discovery store, the registries), the ones not answering first, each with
how old what it last said is and what stands still meanwhile. Read in a thread every second:
with the store away, the engine of this Cockpit still says what it knows."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from cockpit.engine.facade import Snapshot
from cockpit.engine.health import TITLE, BackendState, span
from cockpit.screens.base import ViewScreen
from cockpit.widgets.live_table import Column, LiveTable

COLUMNS = (
    Column("Backend", "kind", 16),
    Column("Name", "name", 24),
    Column("State", "state", 22),
    Column("Said", "error", None),
)


@dataclass(frozen=True, repr=False)
class Paint:
    states: tuple[BackendState, ...]
    query: str
    now: float

    def __repr__(self) -> str:
        return f"Paint({len(self.states)} backends, {self.query!r})"


def backend_rows(p: Paint) -> list[tuple[str, tuple]]:
    words = p.query.lower().split()
    rows = []
    for b in p.states:
        if words and not all(w in f"{b.kind} {b.name} {b.error or ''} {'ok' if b.ok else 'down'}".lower()
                             for w in words):
            continue
        if b.ok:
            state = Text("answering", style="green")
        else:
            since = f" {span(p.now - b.since_real)}" if b.since_real is not None else ""
            state = Text(f"not answering{since}", style="bold red")
        rows.append((f"{b.kind}/{b.name}", (TITLE.get(b.kind, b.kind), b.name, state, b.error or "")))
    return rows


class BackendsScreen(ViewScreen):
    VIEW = "backends"
    ALIASES = ("be", "health")
    HELP = "Store, cloud, engines, discovery, registries: answering or not, and since when"
    CSS_PATH = "backends.tcss"
    AUTO_FOCUS = "#backends"

    def __init__(self) -> None:
        super().__init__()
        self._states: tuple[BackendState, ...] = ()
        self._by_key: dict[str, BackendState] = {}
        self._reading = False
        self._error: str | None = None

    def body(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="backends")
        yield Static("", id="backend-detail")

    def on_mount(self) -> None:
        self._read()
        self.set_interval(1.0, self._read)

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        self._read()

    def _read(self) -> None:
        if self._reading:
            return
        self._reading = True
        self._load()

    @work(thread=True, group="backends-read", exit_on_error=False, description="read the backends' health")
    def _load(self) -> None:
        try:
            states, error = tuple(self.cockpit_app.cockpit.backends()), None
        except Exception as e:  # the store away and no engine here to ask: say so, keep what is shown
            states, error = None, f"{type(e).__name__}: {e}"
        self.on_loop(self._loaded, states, error)

    def _loaded(self, states: tuple[BackendState, ...] | None, error: str | None) -> None:
        self._reading = False
        if not self.is_attached:
            return
        self._error = error
        if states is not None:
            self._states = states
            self._by_key = {f"{b.kind}/{b.name}": b for b in states}
        self.repaint()

    def paint_state(self) -> Paint:
        return Paint(self._states, self.query_text.strip(), time.time())

    def compute(self, state: Paint) -> list[tuple[str, tuple]]:
        return backend_rows(state)

    def show(self, rows: list[tuple[str, tuple]]) -> None:
        table = self.query_one("#backends", LiveTable)
        table.sync(rows)
        self._detail(table.current_key())

    def on_live_table_highlighted(self, message: LiveTable.Highlighted) -> None:
        self._detail(message.key)

    def _detail(self, key: str | None) -> None:
        detail = self.query_one("#backend-detail", Static)
        if self._error is not None:
            detail.update(Text(f"store: {self._error} (what is shown is the last that could be read)", "bold red"))
            return
        b = self._by_key.get(key) if key else None
        if b is None:
            detail.update("No engine has reported on its backends yet." if not self._states else "")
            return
        detail.update(Text(b.describe(time.time()), style="" if b.ok else "bold red"))
