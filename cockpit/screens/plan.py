"""`:plan`: what if we place N containers of a service? The plan, a heat map of host utilisation
before and after, the strategies side by side, the dependent services, export, and apply.

The form is read on the event loop; the preview, the comparison and the export run in threads
with the values already read, and their results are put on screen on the loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Input, Label, Static, TabbedContent, TabPane

from cockpit.cli_text import COMPARE, need_text
from cockpit.engine.facade import Cockpit, Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.form_fields import ChoiceInput, FieldInput, FieldRow
from cockpit.widgets.heatmap import HeatMap, HeatScroll, legend
from cockpit.widgets.live_table import Column, LiveTable
from cockpit.widgets.view_tabs import ViewTabs

STRATEGY_NAMES = ["spread", "binpack", "random", "custom"]
FORM = ("target", "count", "idc", "strategy", "filters", "seed")
HINT = "Fill in the request and press Enter to preview."


def _pct(u: float) -> Text:
    style = "bold red" if u >= 0.95 else "yellow" if u >= 0.85 else ""
    return Text(f"{u:.0%}", style=style, justify="right")


@dataclass
class Shown:
    """A preview and what the view shows of it, built in a thread."""

    preview: object  # cockpit.core.whatif.Preview
    placements: list[tuple[str, tuple, str]]  # (host, cells, text the filter looks in)
    heat: list[tuple[str, float, float]]
    deps: list[tuple[str, tuple]]


def placement_rows(p) -> list[tuple[str, tuple, str]]:
    from cockpit.core.placement.metrics import utilisation

    ub, ua = utilisation(p.before), utilisation(p.after)
    rows = []
    for h, n in p.root.plan.per_host().items():
        name = p.before.names[h]
        cells = (name, str(p.before.idc[h]), str(p.before.pool[h]), str(p.before.hardware[h]),
                 Text(f"+{n}", justify="right"), _pct(float(ub[h])), _pct(float(ua[h])))
        rows.append((name, cells, " ".join(c.plain if isinstance(c, Text) else c for c in cells)))
    return rows


def dependency_rows(p) -> list[tuple[str, tuple]]:
    rows = []
    for k, d in enumerate(p.parts):
        via = "requested" if k == 0 else " → ".join(f"sid {s}" for s in d.via)
        rows.append((f"{k}:{d.service}", (d.service, str(d.count), via, str(d.plan.placed),
                                          Text(str(d.plan.unplaced), style="bold red" if d.plan.unplaced else ""),
                                          str(d.metrics.hosts_touched), need_text(d.need))))
    return rows


def compare_rows(previews: dict) -> list[tuple[str, tuple]]:
    rows = []
    for label, key, fmt in COMPARE:
        values = {name: getattr(p.root.metrics, key) for name, p in previews.items()}
        best = min(values.values()) if key not in ("placed", "largest_fit") else max(values.values())
        cells = [label]
        for s in STRATEGY_NAMES:
            if s not in values:
                cells.append("—")
                continue
            cells.append(Text(fmt.format(values[s]), justify="right",
                              style="bold green" if values[s] == best and len(set(values.values())) > 1 else ""))
        rows.append((key, tuple(cells)))
    need_row = ["shared+ECS hosts"] + [
        Text(f"{previews[s].root.need.shared_hosts}+{previews[s].root.need.ecs_hosts}" if s in previews else "—",
             justify="right")
        for s in STRATEGY_NAMES
    ]
    cost_row = ["cost/month (all)"] + [
        Text(f"{previews[s].cost_per_month:,.0f}" if s in previews else "—", justify="right")
        for s in STRATEGY_NAMES
    ]
    return rows + [("needs", tuple(need_row)), ("cost", tuple(cost_row))]


def summary_lines(p, task_text: str) -> Text:
    root, m = p.root, p.root.metrics
    line1 = Text.assemble(
        (p.request.describe(), "bold"),
        f" → placed {m.placed} on {m.hosts_touched} hosts",
        (f", {m.unplaced} unplaced" if m.unplaced else "", "bold red"),
    )
    line2 = Text(
        f"util {m.util_mean_before:.0%}→{m.util_mean_after:.0%}  σ {m.imbalance_std_before:.3f}→"
        f"{m.imbalance_std_after:.3f}  stranded {m.stranded_cores:.0f} cores {m.stranded_memory_gb:.0f} GB"
        f"  blast {m.blast_radius}"
    )
    if task_text:
        line3 = Text(task_text, style="bold")
    else:
        deps = ", ".join(f"{d.service} +{d.count}" for d in p.dependencies)
        cost = f" ({p.cost_per_month:,.0f}/month)" if p.cost_per_month else ""
        line3 = Text(f"needs: {need_text(root.need)}{cost}" + (f"  with {deps}" if deps else ""))
        if root.plan.unplaced:
            line3 = Text(f"{root.plan.why_unplaced()}; needs: {need_text(root.need)}{cost}", style="yellow")
    return Text("\n").join([line1, line2, line3])  # each line cut when narrow (plan.tcss)


class PlanForm(FieldRow):
    """A row of the request's fields; esc leaves the form for the results at once (the keys
    typed after it act on the results)."""

    BINDINGS = [Binding("escape", "screen.leave_form", "To the results", id="back", priority=True)]


class PlanScreen(ViewScreen):
    VIEW = "plan"
    ALIASES = ("p", "whatif", "what-if")
    HELP = "What if: place N containers, compare strategies, apply"
    CSS_PATH = "plan.tcss"
    AUTO_FOCUS = "#target"

    # Priority keys act as the app reads them, so a key typed right after `e` lands in the form
    # rather than acting on the results (an Input's own characters are never taken by them).
    BINDINGS = [
        Binding("c", "compare", "Compare", id="plan.compare", priority=True),
        Binding("a", "apply", "Apply…", id="plan.apply", priority=True),
        Binding("x", "export('json')", "Export JSON", id="plan.export_json", show=False, priority=True),
        Binding("Y", "export('yaml')", "Export YAML", id="plan.export_yaml", show=False, priority=True),
        Binding("e", "edit", "Edit request", id="plan.edit", priority=True),
    ]
    ACTION_IDS = {"apply": "plan.apply"}

    def __init__(self) -> None:
        super().__init__()
        self.preview = None
        self.previews: dict = {}
        self._shown: Shown | None = None
        self._task_id: int | None = None
        self._task_text = ""
        self._gen = {"preview": 0, "compare": 0}
        self._compared_for: object = None  # the preview the last comparison was started for
        self._edits = 0  # changes to the form's fields, to know whether the user typed since Enter
        self._asked: tuple[Widget | None, int] | None = None

    def body(self) -> ComposeResult:
        idcs = [i.name for i in self.cockpit_app.cockpit.world.idcs]
        with PlanForm(classes="form"):
            yield Label("What")
            yield ChoiceInput("feed", (), id="target", compact=True)
            yield Label("Count")
            yield FieldInput("100", id="count", type="integer", compact=True)
            yield Label("IDC")
            yield ChoiceInput("", idcs, id="idc", placeholder="any", compact=True)
            yield Label("Strategy")
            yield ChoiceInput("spread", STRATEGY_NAMES, id="strategy", compact=True)
        with PlanForm(classes="form"):
            yield Label("Filters")
            yield FieldInput("", id="filters", placeholder="gen == new, disk >= 1T", compact=True)
            yield Label("Seed")
            yield FieldInput("0", id="seed", type="integer", compact=True)
        yield Static(HINT, id="summary")
        with ViewTabs(id="tabs"):
            with TabPane("Plan", id="tab-plan"):
                yield LiveTable(
                    [Column("Host", "host", 17), Column("IDC", "idc", 8, drop=2), Column("Pool", "pool", 9, drop=1),
                     Column("HW", "hw", 7, drop=3), Column("Add", "add", 4), Column("Before", "before", 6),
                     Column("After", "after", 6)],
                    id="placements",
                )
            with TabPane("Heat map", id="tab-heat"):
                with HeatScroll(id="heat-scroll"):
                    yield Static(legend(self.app.no_color), id="legend")
                    yield HeatMap(id="heat")
            with TabPane("Compare", id="tab-compare"):
                yield LiveTable([Column("Metric", "metric", 19)] + [Column(s, s, 9) for s in STRATEGY_NAMES],
                                id="compare")
            with TabPane("Dependencies", id="tab-deps"):
                yield LiveTable(
                    # the chain of dependencies is the longest cell: it takes the width left
                    [Column("Service", "svc", 9), Column("Count", "count", 5), Column("Via", "via", None, drop=1),
                     Column("Placed", "placed", 6), Column("Left", "left", 5), Column("Hosts", "hosts", 5, drop=2),
                     Column("Needs", "needs", 22, drop=3)],
                    id="deps",
                )

    def on_mount(self) -> None:
        self._load_targets(self.cockpit_app.cockpit)

    @work(thread=True, group="targets", exit_on_error=False)
    def _load_targets(self, cockpit: Cockpit) -> None:
        targets = cockpit.plan_targets()  # a store read: off the event loop
        self.on_loop(self._set_targets, targets)


    def _set_targets(self, targets: list[str]) -> None:
        if self.is_attached:  # not left meanwhile
            self.query_one("#target", ChoiceInput).set_choices(targets)

    def on_key(self, event: events.Key) -> None:
        """Keys typed while the view is still opening (nothing has the focus yet) go into the
        form, where the user is typing, rather than to the view's action keys."""
        if self.focused is not None or not event.is_printable:
            return
        try:
            target = self.query_one("#target", Input)
        except NoMatches:
            return
        event.stop()
        event.prevent_default()
        self.set_focus(target)  # at once: the keys after this one go straight to the field
        target.post_message(events.Key(event.key, event.character))

    # --- the request --------------------------------------------------------------------

    def _fields(self, submitted: Input.Submitted | None = None) -> dict:
        """The form's values; on the event loop only. The field Enter was pressed in counts as
        it was then, not with the keys typed after it."""
        v = {i.id: i.value for i in self.query(Input) if i.id in FORM}
        if submitted is not None:
            v[submitted.input.id] = submitted.value
        return {"target": v["target"], "count": v["count"] or "0", "idc": v["idc"], "strategy": v["strategy"].strip(),
                "filters": v["filters"], "seed": v["seed"] or "0"}

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in FORM:
            self._edits += 1

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in FORM:
            event.stop()
            self.start_preview(event)

    def start_preview(self, submitted: Input.Submitted | None = None) -> None:
        self._asked = (self.focused, self._edits)
        self._gen["preview"] += 1
        self._say("planning…")
        self._run_preview(self._gen["preview"], self._fields(submitted))

    def _say(self, text: str | Text, error: bool = False) -> None:
        summary = self.query_one("#summary", Static)
        summary.set_class(error, "-error")
        summary.update(Text(text, style="bold red") if error and isinstance(text, str) else text)

    @work(thread=True, group="preview", exit_on_error=False)
    def _run_preview(self, gen: int, fields: dict) -> None:
        from cockpit.core.whatif import WhatIfError

        cockpit = self.cockpit_app.cockpit
        try:
            p = cockpit.preview(cockpit.whatif(**fields))
        except WhatIfError as e:
            self.on_loop(self._failed, gen, str(e))
            return
        except Exception as e:  # the store went away, say: in place, in one line, not "planning…" forever
            self.on_loop(self._failed, gen, f"cannot preview: {type(e).__name__}: {e}")
            return
        shown = Shown(p, placement_rows(p), p.heat(), dependency_rows(p))
        self.on_loop(self._show_preview, gen, shown)

    def _failed(self, gen: int, why: str) -> None:
        if gen == self._gen["preview"]:
            self._say(why, error=True)

    def _show_preview(self, gen: int, shown: Shown) -> None:
        if gen != self._gen["preview"] or not self.is_attached:
            return  # a newer request was made since
        self._shown = shown
        self.preview = shown.preview
        self.previews = {}
        self._compared_for = None
        self._task_id = None
        self._task_text = ""
        self._paint_summary()
        self.repaint()
        self.query_one(HeatMap).show(shown.heat)
        self.query_one("#deps", LiveTable).sync(shown.deps)
        self.query_one("#compare", LiveTable).sync([])
        if self.query_one(TabbedContent).active == "tab-compare":
            self._compare_if_stale()
        # To the results, unless the user has moved on since pressing Enter (typing in the form,
        # or gone elsewhere): the keys they type must not turn into the results' action keys.
        if self._asked == (self.focused, self._edits):
            self._focus_pane()
        self.refresh_bindings()

    def _paint_summary(self) -> None:
        if self.preview is not None:
            self._say(summary_lines(self.preview, self._task_text))

    # the placements table, filtered with `/` off the event loop (ViewScreen.repaint)

    def paint_state(self) -> tuple[list, str]:
        return (self._shown.placements if self._shown else [], self.query_text.strip())

    def compute(self, state: tuple[list, str]) -> list[tuple[str, tuple]]:
        rows, q = state
        return [(key, cells) for key, cells, text in rows if not q or matches(q, text)]

    def show(self, result: list[tuple[str, tuple]]) -> None:
        self.query_one("#placements", LiveTable).sync(result)

    def action_leave_form(self) -> None:
        """Esc in the form: to the results, rather than leaving the view."""
        self._focus_pane()

    # --- tabs ---------------------------------------------------------------------------

    def _focus_pane(self) -> None:
        """Focus what the active tab shows (a table, or the heat map's scroll)."""
        tabs = self.query_one(TabbedContent)
        pane = tabs.get_pane(tabs.active) if tabs.active else None
        if pane is None:
            return
        for w in pane.query("LiveTable, VerticalScroll"):
            if w.focusable:
                self.set_focus(w)
                return

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """`]` / `[` (or a click) changed the tab: the keys follow to its content, so j/k and
        the arrows move in what is shown; the form and the tab bar keep the focus they have."""
        focused = self.focused
        if focused is not None and any(isinstance(a, TabPane) for a in focused.ancestors_with_self):
            self.call_after_refresh(self._focus_pane)
        if event.pane.id == "tab-compare":
            self._compare_if_stale()

    # --- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("compare", "apply", "export", "edit") and self.focused is None:
            return False  # the view is still opening: the key is typed into the form (on_key)
        return super().check_action(action, parameters)

    def _need_preview(self, what: str) -> bool:
        if self.preview is None:
            self.notify(f"nothing to {what} yet: fill in the request and press Enter to preview", severity="warning")
            return False
        return True

    def action_edit(self) -> None:
        self.set_focus(self.query_one("#target", Input))

    def action_compare(self) -> None:
        tabs = self.query_one(TabbedContent)
        self._start_compare()
        if tabs.active != "tab-compare":
            tabs.active = "tab-compare"

    def _compare_if_stale(self) -> None:
        if self.preview is not None and self._compared_for is not self.preview:
            self._start_compare()

    def _start_compare(self) -> None:
        self._gen["compare"] += 1
        self._compared_for = self.preview
        request = self.preview.request if self.preview is not None else None
        self._run_compare(self._gen["compare"], request, self._fields())

    @work(thread=True, group="compare", exit_on_error=False)
    def _run_compare(self, gen: int, request, fields: dict) -> None:
        from cockpit.core.whatif import WhatIfError

        cockpit = self.cockpit_app.cockpit
        try:
            previews = cockpit.compare(request if request is not None else cockpit.whatif(**fields))
        except WhatIfError as e:
            self.on_loop(self._compare_failed, gen, str(e))
            return
        except Exception as e:  # as for the preview
            self.on_loop(self._compare_failed, gen, f"cannot compare: {type(e).__name__}: {e}")
            return
        self.on_loop(self._show_compare, gen, previews, compare_rows(previews))

    def _compare_failed(self, gen: int, why: str) -> None:
        if gen == self._gen["compare"]:
            self._say(why, error=True)

    def _show_compare(self, gen: int, previews: dict, rows: list) -> None:
        if gen != self._gen["compare"] or not self.is_attached:
            return
        self.previews = previews
        self.query_one("#compare", LiveTable).sync(rows)

    def action_apply(self) -> None:
        p = self.preview
        if not self._need_preview("apply"):
            return
        parts = ", ".join(f"{d.service} +{d.plan.placed}" for d in p.parts)
        left = sum(d.plan.unplaced for d in p.parts)
        body = f"{p.request.describe()}\nStart {parts} on hosts already in service: no added cost."
        if left:
            body += (f"\n{left} more do not fit and are left out; the hosts they need would cost "
                     f"{p.cost_per_month:,.0f} a month (order them in :ecs).")

        def do():
            outcome = self.cockpit_app.cockpit.apply_plan(p)
            if outcome.task is not None:
                self.on_loop(self._track, outcome.task)
            return outcome

        self.cockpit_app.perform("plan.apply", body, do)

    def _track(self, task_id: int) -> None:
        self._task_id = task_id
        self._task_text = f"task {task_id} queued for the engine"
        self._paint_summary()

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if self._task_id is not None:
            self._poll_task(self._task_id)

    @work(thread=True, exclusive=True, group="task", exit_on_error=False)
    def _poll_task(self, task_id: int) -> None:
        t = self.cockpit_app.cockpit.task(task_id)
        if t is None:
            return
        if t.state == "done":
            text = "task %d done: " % t.id + ", ".join(
                f"{s} +{v['placed']}" + (f" ({v['replanned']} re-placed)" if v["replanned"] else "")
                + (f" ({v['lost']} no longer fit)" if v["lost"] else "")
                for s, v in t.progress.items()
            )
        elif t.state == "failed":
            text = f"task {t.id} failed: {t.reason}"
        else:
            text = f"task {t.id} {t.state}"
        self.on_loop(self._task_state, task_id, text, t.state in ("done", "failed"))

    def _task_state(self, task_id: int, text: str, final: bool) -> None:
        if task_id != self._task_id:
            return  # a new preview replaced the plan this task came from
        self._task_text = text
        if final:
            self._task_id = None
        self._paint_summary()

    def action_export(self, fmt: str) -> None:
        if not self._need_preview("export"):
            return
        p = self.preview
        r = p.request
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")  # a local file's name: the user's own clock
        path = Path.cwd() / f"plan-{p.root.service}-{r.idc or 'any'}-{r.strategy}-{stamp}.{fmt}"
        self._export(p, fmt, path)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, p, fmt: str, path: Path) -> None:
        from cockpit.core.whatif import document

        doc = document(p)
        text = json.dumps(doc, indent=2) if fmt == "json" else yaml.safe_dump(doc, sort_keys=False)
        try:
            path.write_text(text)
        except OSError as e:
            self.on_loop(self.notify, f"cannot write {path}: {e.strerror}", severity="error")
            return
        self.on_loop(self.notify, f"plan written to {path}")
