"""`:events`: what happened on the platform, newest last, in platform time: hosts failing and
returning, hot events, engine hand-overs, tasks. Kept to the last 1,000 so a long session does
not grow without bound. The event text takes every column the time and level leave; the line
under the table shows the selected event in full."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from cockpit.engine.facade import EventView, Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.widgets.live_table import Column, LiveTable

KEEP = 1000
LEVEL_STYLE = {"warn": "yellow", "error": "bold red", "info": ""}
# The time (platform, the world's zone; the day is in the line below) and the level are narrow
# so the event itself gets the rest: 64 of 80 columns.
COLUMNS = (
    Column("Time", "t", 8),
    Column("Level", "lvl", 5),
    Column("Event", "msg", None),
)


@dataclass(frozen=True, repr=False)
class Paint:
    events: tuple[EventView, ...]
    query: str
    tz: tzinfo

    def __repr__(self) -> str:  # short: Textual describes a worker by the repr of its arguments
        return f"Paint({len(self.events)} events, {self.query!r})"


def event_rows(p: Paint) -> list[tuple[str, tuple]]:
    """The events matching every word of the query (level, kind, scope or text), oldest first."""
    words = p.query.lower().split()
    rows = []
    for ev in p.events:
        if words:
            text = f"{ev.level} {ev.kind} {ev.scope} {ev.message}".lower()
            if not all(w in text for w in words):
                continue
        style = LEVEL_STYLE.get(ev.level, "")
        when = datetime.fromtimestamp(ev.t, p.tz).strftime("%H:%M:%S")
        rows.append((str(ev.id), (when, Text(ev.level, style=style), Text(ev.message, style=style))))
    return rows


class EventsScreen(ViewScreen):
    VIEW = "events"
    ALIASES = ("ev", "e", "log")
    HELP = "Host failures and recoveries, hot events, hand-overs"
    CSS_PATH = "events.tcss"
    AUTO_FOCUS = "#events"

    def __init__(self) -> None:
        super().__init__()
        self._events: deque[EventView] = deque(maxlen=KEEP)
        self._by_id: dict[str, EventView] = {}
        self._last_id = 0
        self._reading = False
        self._read_once = False

    def body(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="events")
        yield Static("", id="event-detail")

    def on_mount(self) -> None:
        self._read()

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if not self._read_once or (snap.last_event is not None and snap.last_event.id != self._last_id):
            self._read()

    def _read(self) -> None:
        if self._reading:
            return  # one read at a time; the next snapshot asks again
        self._reading = True
        self._load(self._last_id)

    @work(thread=True, group="events-read", exit_on_error=False, description="read new events")
    def _load(self, after_id: int) -> None:
        try:
            new, error = self.cockpit_app.cockpit.events(after_id=after_id, limit=KEEP), None
        except Exception as e:  # a locked or damaged store: say so, keep what is shown
            new, error = [], f"{type(e).__name__}: {e}"
        self.on_loop(self._loaded, new, error)

    def _loaded(self, new: list[EventView], error: str | None) -> None:
        self._reading = False
        self._read_once = True
        if not self.is_attached:  # the view was left meanwhile
            return
        # Only events newer than the newest held: a read that overlapped another never adds an
        # event twice (which is how the old table met a duplicate key).
        fresh = [ev for ev in new if ev.id > self._last_id]
        if fresh:
            self._events.extend(fresh)
            self._last_id = fresh[-1].id
            self._by_id = {str(ev.id): ev for ev in self._events}
            self.repaint()
        if error is not None:
            self.query_one("#event-detail", Static).update(Text(f"store: {error}", "bold red"))

    # --- painting (base.ViewScreen: paint_state on the loop, compute in a thread, show) -------

    def paint_state(self) -> Paint:
        return Paint(tuple(self._events), self.query_text.strip(), self.cockpit_app.cockpit.world.traffic.tz)

    def compute(self, state: Paint) -> list[tuple[str, tuple]]:
        return event_rows(state)

    def show(self, rows: list[tuple[str, tuple]]) -> None:
        table = self.query_one("#events", LiveTable)
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1  # on the newest: stay there
        table.sync(rows)
        if following and rows:
            table.move_cursor(row=len(rows) - 1)
        self._detail(table.current_key())

    def on_live_table_highlighted(self, message: LiveTable.Highlighted) -> None:
        self._detail(message.key)

    def _detail(self, key: str | None) -> None:
        ev = self._by_id.get(key) if key else None
        if ev is None:
            self.query_one("#event-detail", Static).update("")
            return
        tz = self.cockpit_app.cockpit.world.traffic.tz
        when = datetime.fromtimestamp(ev.t, tz).strftime("%a %d %b %H:%M:%S")
        self.query_one("#event-detail", Static).update(Text.assemble(
            (when, "bold"), f"  {ev.kind} · {ev.scope}  ", (ev.message, LEVEL_STYLE.get(ev.level, ""))))
