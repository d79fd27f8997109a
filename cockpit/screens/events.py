"""`:events`: what happened on the platform, newest last: hosts failing and returning, hot events,
engine hand-overs. Kept to the last 1,000 so a long session does not grow without bound."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult

from cockpit.engine.facade import EventView, Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import LiveTable

KEEP = 1000
LEVEL_STYLE = {"warn": "yellow", "error": "bold red", "info": ""}


class EventsScreen(ViewScreen):
    VIEW = "events"
    ALIASES = ("ev", "e", "log")
    HELP = "Host failures and recoveries, hot events, hand-overs"

    def __init__(self) -> None:
        super().__init__()
        self._events: deque[EventView] = deque(maxlen=KEEP)
        self._last_id = 0

    def body(self) -> ComposeResult:
        yield LiveTable([("Time", "t", 11), ("Lvl", "lvl", 4), ("Scope", "scope", 18), ("Event", "msg", None)], id="events")

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if snap.last_event is None or snap.last_event.id != self._last_id:
            self.load()

    @work(thread=True, exclusive=True, group="events")
    def load(self) -> None:
        new = self.cockpit_app.cockpit.events(after_id=self._last_id, limit=KEEP)
        self.app.call_from_thread(self._loaded, new)

    def _loaded(self, new: list[EventView]) -> None:
        if new:
            self._events.extend(new)
            self._last_id = new[-1].id
        self._paint()

    def apply_filter(self) -> None:
        self._paint()

    def _paint(self) -> None:
        tz = self.cockpit_app.cockpit.world.traffic.tz
        q = self.query_text.strip()
        rows = []
        for ev in self._events:
            if q and not matches(q, f"{ev.level} {ev.kind} {ev.scope} {ev.message}"):
                continue
            when = datetime.fromtimestamp(ev.t, tz).strftime("%d %H:%M:%S")
            style = LEVEL_STYLE.get(ev.level, "")
            rows.append((str(ev.id), (when, Text(ev.level, style=style), ev.scope, Text(ev.message, style=style))))
        table = self.query_one(LiveTable)
        at_end = table.cursor_row >= table.row_count - 1
        table.sync(rows)
        if at_end and rows:
            table.move_cursor(row=len(rows) - 1, animate=False)
