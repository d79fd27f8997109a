"""`:audit`: every action asked for, by whom and when, and whether it was done, refused or failed.

When is the platform's time (the world's zone), as everywhere else; the wall clock stands beside
it, in this machine's zone, to match the audit with other logs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from cockpit.engine.facade import AuditView
from cockpit.screens.base import PolledView
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column, LiveTable

KEEP = 2000  # the newest entries kept in the view; older ones stay in the store
OUTCOME_STYLE = {"done": "green", "refused": "yellow", "failed": "bold red"}


def columns(real_zone: str) -> tuple[Column, ...]:
    """Narrower than 80 columns, the target goes first (the details below name it), then the wall
    clock, then the user; when, what, the outcome and the details stay."""
    return (
        Column("Platform", "t", 11),
        Column(f"Real {real_zone}", "real", 11, drop=2),
        Column("User", "user", 8, drop=1),
        Column("Action", "action", 13),
        Column("Target", "target", 12, drop=3),
        Column("Outcome", "outcome", 7),
        Column("Details", "details", None),
    )


def details_text(details: dict) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                    for k, v in sorted(details.items()))


def platform_time(a: AuditView, tz: tzinfo, fmt: str) -> str:
    return datetime.fromtimestamp(a.platform_t, tz).strftime(fmt) if a.platform_t is not None else "-"


def real_time(a: AuditView, fmt: str) -> str:
    """The wall clock in this machine's zone (what its other logs use)."""
    return datetime.fromtimestamp(a.real_t).astimezone().strftime(fmt)


@dataclass(frozen=True)
class _Paint:
    rows: list[AuditView]
    query: str
    tz: tzinfo


class AuditScreen(PolledView):
    VIEW = "audit"
    ALIASES = ("a",)
    HELP = "Who asked for which change, when, and what came of it"
    CSS_PATH = "audit.tcss"

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[AuditView] = []  # newest first
        self._top_id = 0
        self._loaded_once = False
        self._by_key: dict[str, AuditView] = {}

    def body(self) -> ComposeResult:
        yield LiveTable(columns(time.strftime("%Z")), id="audit")
        yield Static("", id="detail")

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)  # a store error: the header says so
    def load(self) -> None:
        new = self.cockpit_app.cockpit.audit_log(limit=KEEP, after_id=self._top_id)
        self.on_loop(self._loaded, new)

    def _loaded(self, new: list[AuditView]) -> None:
        if self._loaded_once and not new:
            return
        # the id is read again here: a load that started before an older one came back adds nothing twice
        new = [a for a in new if a.id > self._top_id]
        self._rows = (new + self._rows)[:KEEP]
        self._top_id = self._rows[0].id if self._rows else 0
        self._loaded_once = True
        self.repaint()

    # --- painting (off the event loop) --------------------------------------------------

    def paint_state(self) -> _Paint:
        return _Paint(self._rows, self.query_text.strip(), self.cockpit_app.cockpit.world.traffic.tz)

    def compute(self, state: _Paint) -> tuple[list, dict[str, AuditView]]:
        out, by_key = [], {}
        for a in state.rows:
            details = details_text(a.details)
            when = platform_time(a, state.tz, "%d %H:%M:%S")
            if state.query and not matches(state.query, f"{when} {a.user} {a.role} {a.action} {a.target} "
                                                        f"{a.outcome} {details}"):
                continue
            by_key[str(a.id)] = a
            out.append((str(a.id), (when, Text(real_time(a, "%d %H:%M:%S"), style="dim"), a.user, a.action, a.target,
                                    Text(a.outcome, style=OUTCOME_STYLE.get(a.outcome, "")), details)))
        return out, by_key

    def show(self, result: tuple[list, dict[str, AuditView]]) -> None:
        rows, self._by_key = result
        self.query_one(LiveTable).sync(rows)
        self._paint_detail()

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        self._paint_detail()

    def _paint_detail(self) -> None:
        key = self.query_one(LiveTable).current_key()
        a = self._by_key.get(key) if key is not None else None
        detail = self.query_one("#detail", Static)
        if a is None:
            detail.update("Nothing asked for yet." if not self._rows else "No entry matches the filter.")
            return
        tz = self.cockpit_app.cockpit.world.traffic.tz
        detail.update(Text("\n").join([
            Text.assemble((f"#{a.id} {a.action}", "bold"), f" on {a.target} by {a.user} ({a.role}): ",
                          (a.outcome, OUTCOME_STYLE.get(a.outcome, ""))),
            Text(f"platform {platform_time(a, tz, '%a %d %b %Y %H:%M:%S %Z')}, "
                 f"real {real_time(a, '%Y-%m-%d %H:%M:%S %Z')}"),
            Text(details_text(a.details) or "no details"),
        ]))
