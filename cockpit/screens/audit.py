"""`:audit`: every action asked for, by whom and when, and whether it was done, refused or failed."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult

from cockpit.engine.facade import AuditView, Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import LiveTable

OUTCOME_STYLE = {"done": "green", "refused": "yellow", "failed": "bold red"}


class AuditScreen(ViewScreen):
    VIEW = "audit"
    ALIASES = ("a",)
    HELP = "Who asked for which change, when, and what came of it"

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[AuditView] = []
        self._top_id = -1

    def body(self) -> ComposeResult:
        yield LiveTable(
            [("When", "t", 14), ("User", "user", 9), ("Action", "action", 14), ("Target", "target", 12),
             ("Outcome", "outcome", 8), ("Details", "details", None)],
            id="audit",
        )

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="audit")
    def load(self) -> None:
        rows = self.cockpit_app.cockpit.audit_log()
        self.app.call_from_thread(self._loaded, rows)

    def _loaded(self, rows: list[AuditView]) -> None:
        top = rows[0].id if rows else 0
        if top != self._top_id:
            self._rows, self._top_id = rows, top
            self._paint()

    def apply_filter(self) -> None:
        self._paint()

    def _paint(self) -> None:
        q = self.query_text.strip()
        out = []
        for a in self._rows:
            details = " ".join(f"{k}={v}" for k, v in sorted(a.details.items()))
            if q and not matches(q, f"{a.user} {a.role} {a.action} {a.target} {a.outcome} {details}"):
                continue
            when = datetime.fromtimestamp(a.real_t).strftime("%m-%d %H:%M:%S")
            out.append((str(a.id), (when, a.user, a.action, a.target,
                                    Text(a.outcome, style=OUTCOME_STYLE.get(a.outcome, "")), details)))
        self.query_one(LiveTable).sync(out)
