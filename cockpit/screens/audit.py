"""`:audit`: every action asked for and every change the engine made on its own, by whom, from
which host and when, and whether it was done, refused or failed.

When is the platform's time (the world's zone), as everywhere else; the wall clock stands beside
it, in this machine's zone, to match the audit with other logs. Explicit filters (user, action,
outcome: `f` for a form, `u` `a` `o` for the selected entry's) are asked of the store, so they
reach past the newest entries held; `/` narrows what is shown by words, as in every view. The
line under the table says which filters hold and whether the log's hash chain is whole (walked
off the event loop)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.engine.facade import AuditChain, AuditFilter, AuditView
from cockpit.screens.base import PolledView
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column, LiveTable

KEEP = 2000  # the newest entries kept in the view; older ones stay in the store
OUTCOME_STYLE = {"done": "green", "refused": "yellow", "failed": "bold red"}
FULL_WALK_S = 30.0  # the whole chain is walked again this often; new entries at every read


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


def chain_text(chain: AuditChain | None, error: str | None = None) -> Text:
    """The chain's state, for the summary line."""
    if error is not None:
        return Text(f"chain not checked: {error}", style="bold red")
    if chain is None:
        return Text("chain: checking…", style="dim")
    if chain.whole:
        return Text(f"chain whole ({chain.entries:,} entries)", style="green")
    return Text(f"chain BROKEN at entry {chain.broken.id}: {chain.broken.short()}", style="bold red")


@dataclass(frozen=True)
class _Paint:
    rows: list[AuditView]
    query: str
    tz: tzinfo


class AuditScreen(PolledView):
    VIEW = "audit"
    ALIASES = ("a",)
    HELP = "Who asked for which change, when, and what came of it; whether the log is whole"
    CSS_PATH = "audit.tcss"
    BINDINGS = [
        Binding("f", "filter_form", "Filter…", id="audit.filter"),
        Binding("u", "by('user')", "This user", id="audit.user"),
        Binding("a", "by('action')", "This action", id="audit.action"),
        Binding("o", "by('outcome')", "This outcome", id="audit.outcome"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[AuditView] = []  # newest first
        self._top_id = 0
        self._loaded_once = False
        self._by_key: dict[str, AuditView] = {}
        self.where = AuditFilter()
        self._reads = 0  # a read for filters since changed is dropped
        self._reading: int | None = None  # the read under way: one at a time, unless the filters changed
        self._chain: AuditChain | None = None
        self._chain_error: str | None = None
        self._walking = False
        self._walked_full = 0.0

    def body(self) -> ComposeResult:
        yield LiveTable(columns(time.strftime("%Z")), id="audit")
        yield Static("", id="summary")
        yield Static("", id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        self._paint_summary()

    # --- reading (off the event loop) ----------------------------------------------------

    def load(self) -> None:
        if self._reading != self._reads:
            self._reading = self._reads
            self._read(self._reads, self.where, self._top_id)
        self._walk()

    @work(thread=True, group="audit", exit_on_error=False)
    def _read(self, read: int, where: AuditFilter, after_id: int) -> None:
        try:
            new = self.cockpit_app.cockpit.audit_log(limit=KEEP, after_id=after_id, where=where)
        except Exception:  # noqa: BLE001 - a locked or damaged store: the header says so; read again later
            new = None
        self.on_loop(self._loaded, read, new)

    def _loaded(self, read: int, new: list[AuditView] | None) -> None:
        if read == self._reading:
            self._reading = None
        if new is None or read != self._reads or (self._loaded_once and not new):
            return
        # the id is read again here: a load that started before an older one came back adds nothing twice
        new = [a for a in new if a.id > self._top_id]
        self._rows = (new + self._rows)[:KEEP]
        self._top_id = self._rows[0].id if self._rows else 0
        self._loaded_once = True
        self.repaint()

    def _walk(self) -> None:
        if self._walking:
            return
        self._walking = True
        full = time.monotonic() - self._walked_full >= FULL_WALK_S
        if full:
            self._walked_full = time.monotonic()
        self._walk_chain(None if full else self._chain)

    @work(thread=True, group="audit-chain", exit_on_error=False, description="walk the audit chain")
    def _walk_chain(self, since: AuditChain | None) -> None:
        try:
            chain, error = self.cockpit_app.cockpit.audit_chain(since), None
        except Exception as e:  # a locked or damaged store: say so, keep the view
            chain, error = None, f"{type(e).__name__}: {e}"
        self.on_loop(self._walked, chain, error)

    def _walked(self, chain: AuditChain | None, error: str | None) -> None:
        self._walking = False
        if chain is not None:
            self._chain = chain
        self._chain_error = error
        if self.is_attached:
            self._paint_summary()

    # --- explicit filters ----------------------------------------------------------------

    def set_filter(self, where: AuditFilter) -> None:
        """Ask the store again with these filters (the entries held are for the old ones)."""
        if where == self.where:
            return
        self.where = where
        self._reads += 1
        self._rows, self._top_id, self._loaded_once = [], 0, False
        self._paint_summary()
        self.repaint()
        self.load()

    def action_by(self, column: str) -> None:
        """The selected entry's user, action or outcome only; again: any."""
        key = self.query_one(LiveTable).current_key()
        a = self._by_key.get(key) if key is not None else None
        if getattr(self.where, column) is not None:
            self.set_filter(replace(self.where, **{column: None}))
        elif a is not None:
            self.set_filter(replace(self.where, **{column: getattr(a, column)}))

    def action_filter_form(self) -> None:
        self._read_choices()

    @work(thread=True, exclusive=True, group="audit-choices", exit_on_error=False)
    def _read_choices(self) -> None:
        try:
            choices = self.cockpit_app.cockpit.audit_choices()
        except Exception as e:  # a damaged or unreachable store: say so, keep the view
            self.on_loop(self.notify, f"cannot read the audit log: {type(e).__name__}: {e}", severity="error")
            return
        self.on_loop(self._filter_form, choices)

    def _filter_form(self, choices: dict[str, list[str]]) -> None:
        w = self.where
        fields = [Field("user", "User (empty: any)", w.user or "", tuple(choices["user"])),
                  Field("action", "Action (empty: any; flow.* for every flow action)", w.action or "",
                        tuple(choices["action"])),
                  Field("outcome", "Outcome (empty: any)", w.outcome or "", tuple(choices["outcome"]))]

        def chosen(v: dict | None) -> None:
            if v is not None:
                self.set_filter(AuditFilter(v["user"] or None, v["action"] or None, v["outcome"] or None))

        self.cockpit_app.push_screen(FormScreen("Filter the audit log", fields, submit="Filter"), callback=chosen)

    def handle_escape(self) -> bool:
        """Esc: the `/` filter first, then the explicit ones, then back."""
        if super().handle_escape():
            return True
        if self.where != AuditFilter():
            self.set_filter(AuditFilter())
            return True
        return False

    def _paint_summary(self) -> None:
        said = self.where.describe()
        self.query_one("#summary", Static).update(Text.assemble(
            (f"only {said}" if said else "every entry", "bold" if said else ""), " · ",
            chain_text(self._chain, self._chain_error)))

    # --- painting (off the event loop) --------------------------------------------------

    def paint_state(self) -> _Paint:
        return _Paint(self._rows, self.query_text.strip(), self.cockpit_app.cockpit.world.traffic.tz)

    def compute(self, state: _Paint) -> tuple[list, dict[str, AuditView]]:
        out, by_key = [], {}
        for a in state.rows:
            details = details_text(a.details)
            when = platform_time(a, state.tz, "%d %H:%M:%S")
            if state.query and not matches(state.query, f"{when} {a.user} {a.role} {a.host} {a.action} {a.target} "
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
            filtered = self._rows or self.where != AuditFilter()
            detail.update("No entry matches the filter." if filtered else "Nothing asked for yet.")
            return
        tz = self.cockpit_app.cockpit.world.traffic.tz
        host = f" from {a.host}" if a.host else ""
        if a.db_user and a.db_user != a.user:  # done for them by an engine (PostgreSQL records which)
            host += f", written by database role {a.db_user}"
        detail.update(Text("\n").join([
            Text.assemble((f"#{a.id} {a.action}", "bold"), f" on {a.target} by {a.user} ({a.role}){host}: ",
                          (a.outcome, OUTCOME_STYLE.get(a.outcome, ""))),
            Text(f"platform {platform_time(a, tz, '%a %d %b %Y %H:%M:%S %Z')}, "
                 f"real {real_time(a, '%Y-%m-%d %H:%M:%S %Z')}"),
            Text(details_text(a.details) or "no details"),
        ]))
