"""`:plan`: what if we place N containers of a service? The plan, a heat map of host utilisation
before and after, the strategies side by side, the dependent services, export, and apply."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import yaml
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static, TabbedContent, TabPane

from cockpit.cli_text import COMPARE, need_text
from cockpit.engine.facade import Snapshot
from cockpit.screens.base import ViewScreen
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.heatmap import HeatMap, legend
from cockpit.widgets.live_table import LiveTable

STRATEGY_NAMES = ["spread", "binpack", "random", "custom"]


def _pct(u: float) -> Text:
    style = "bold red" if u >= 0.95 else "yellow" if u >= 0.85 else ""
    return Text(f"{u:.0%}", style=style, justify="right")


class PlanScreen(ViewScreen):
    VIEW = "plan"
    ALIASES = ("p", "whatif", "what-if")
    HELP = "What if: place N containers, compare strategies, apply"

    BINDINGS = [
        Binding("c", "compare", "Compare", id="plan.compare"),
        Binding("a", "apply", "Apply", id="plan.apply"),
        Binding("x", "export('json')", "JSON", id="plan.export_json"),
        Binding("y", "export('yaml')", "YAML", id="plan.export_yaml"),
        Binding("e", "edit", "Edit", id="plan.edit"),
    ]

    DEFAULT_CSS = """
    PlanScreen .form { height: 1; padding: 0 1; }
    PlanScreen .form Label { padding: 0 1 0 0; }
    PlanScreen .form Input { border: none; height: 1; padding: 0; margin: 0 2 0 0; background: $boost; }
    PlanScreen #target { width: 16; }
    PlanScreen #count { width: 8; }
    PlanScreen #idc { width: 10; }
    PlanScreen #strategy { width: 9; }
    PlanScreen #filters { width: 1fr; }
    PlanScreen #seed { width: 6; }
    PlanScreen #summary { height: 3; padding: 0 1; }
    PlanScreen TabbedContent { height: 1fr; }
    PlanScreen TabPane { padding: 0; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.preview = None
        self.previews: dict = {}
        self._task_id: int | None = None
        self._task_text = ""

    def body(self) -> ComposeResult:
        app = self.cockpit_app
        targets = app.cockpit.plan_targets()
        idcs = [i.name for i in app.cockpit.world.idcs]
        with Horizontal(classes="form"):
            yield Label("What")
            yield Input("feed", id="target", suggester=SuggestFromList(targets, case_sensitive=False))
            yield Label("Count")
            yield Input("100", id="count", type="integer")
            yield Label("IDC")
            yield Input("", id="idc", placeholder="any", suggester=SuggestFromList(idcs, case_sensitive=False))
            yield Label("Strategy")
            yield Input("spread", id="strategy", suggester=SuggestFromList(STRATEGY_NAMES))
        with Horizontal(classes="form"):
            yield Label("Filters")
            yield Input("", id="filters", placeholder="gen == new, disk >= 1T")
            yield Label("Seed")
            yield Input("0", id="seed", type="integer")
        yield Static("Fill in the request and press Enter to preview.", id="summary")
        with TabbedContent(id="tabs"):
            with TabPane("Plan", id="tab-plan"):
                yield LiveTable(
                    [("Host", "host", 17), ("IDC", "idc", 8), ("Pool", "pool", 9), ("HW", "hw", 7),
                     ("Add", "add", 4), ("Before", "before", 6), ("After", "after", 6)],
                    id="placements",
                )
            with TabPane("Heat map", id="tab-heat"):
                with VerticalScroll():
                    yield Static(legend(app.no_color), id="legend")
                    yield HeatMap(id="heat")
            with TabPane("Compare", id="tab-compare"):
                yield LiveTable([("Metric", "metric", 19)] + [(s, s, 9) for s in STRATEGY_NAMES], id="compare")
            with TabPane("Dependencies", id="tab-deps"):
                yield LiveTable(
                    [("Service", "svc", 9), ("Count", "count", 5), ("Via", "via", 9), ("Placed", "placed", 6),
                     ("Left", "left", 5), ("Hosts", "hosts", 5), ("Needs", "needs", None)],
                    id="deps",
                )

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()

    # --- the request --------------------------------------------------------------------

    def _fields(self) -> dict:
        v = {i.id: i.value for i in self.query(Input) if i.id in ("target", "count", "idc", "strategy", "filters", "seed")}
        return {"target": v["target"], "count": v["count"] or "0", "idc": v["idc"], "strategy": v["strategy"].strip(),
                "filters": v["filters"], "seed": v["seed"] or "0"}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("target", "count", "idc", "strategy", "filters", "seed"):
            event.stop()
            self.run_preview()

    def _say(self, text: str | Text, error: bool = False) -> None:
        self.query_one("#summary", Static).update(Text(text, style="bold red") if error and isinstance(text, str) else text)

    @work(thread=True, exclusive=True, group="plan")
    def run_preview(self) -> None:
        from cockpit.core.whatif import WhatIfError

        app = self.cockpit_app
        app.call_from_thread(self._say, "planning…")
        try:
            req = app.cockpit.whatif(**self._fields())
            p = app.cockpit.preview(req)
        except WhatIfError as e:
            app.call_from_thread(self._say, str(e), True)
            return
        app.call_from_thread(self._show, p)

    def _show(self, p) -> None:
        self.preview = p
        self.previews = {}
        self._task_id = None
        self._task_text = ""
        self._paint_summary()
        self._paint_placements()
        self.query_one(HeatMap).show(p.heat())
        self._paint_deps()
        self.query_one("#compare", LiveTable).sync([])
        self.query_one("#placements", LiveTable).focus()
        self.refresh_bindings()

    def _paint_summary(self) -> None:
        p = self.preview
        if p is None:
            return
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
        if self._task_text:
            line3 = Text(self._task_text, style="bold")
        else:
            deps = ", ".join(f"{d.service} +{d.count}" for d in p.dependencies)
            cost = f" ({p.cost_per_month:,.0f}/month)" if p.cost_per_month else ""
            line3 = Text(f"needs: {need_text(root.need)}{cost}" + (f"  with {deps}" if deps else ""))
            if root.plan.unplaced:
                line3 = Text(f"{root.plan.why_unplaced()}; needs: {need_text(root.need)}{cost}", style="yellow")
        lines = [line1, line2, line3]
        for t in lines:
            t.no_wrap = True
            t.overflow = "ellipsis"
        self._say(Text("\n").join(lines))

    def _paint_placements(self) -> None:
        p = self.preview
        if p is None:
            return
        from cockpit.core.placement.metrics import utilisation

        ub, ua = utilisation(p.before), utilisation(p.after)
        q = self.query_text.strip()
        rows = []
        for h, n in p.root.plan.per_host().items():
            name = p.before.names[h]
            cells = (name, str(p.before.idc[h]), str(p.before.pool[h]), str(p.before.hardware[h]),
                     Text(f"+{n}", justify="right"), _pct(float(ub[h])), _pct(float(ua[h])))
            if q and not matches(q, " ".join(str(c) for c in cells)):
                continue
            rows.append((name, cells))
        self.query_one("#placements", LiveTable).sync(rows)

    def _paint_deps(self) -> None:
        p = self.preview
        rows = []
        for k, d in enumerate(p.parts):
            via = "requested" if k == 0 else " → ".join(f"sid {s}" for s in d.via)
            rows.append((f"{k}:{d.service}", (d.service, str(d.count), via, str(d.plan.placed),
                                              Text(str(d.plan.unplaced), style="bold red" if d.plan.unplaced else ""),
                                              str(d.metrics.hosts_touched), need_text(d.need))))
        self.query_one("#deps", LiveTable).sync(rows)

    def apply_filter(self) -> None:
        self._paint_placements()

    def handle_escape(self) -> bool:
        """Esc in the form leaves the form for the results, rather than leaving the view."""
        if isinstance(self.focused, Input) and self.focused.id != "filter":
            self.query_one("#placements", LiveTable).focus()
            return True
        return super().handle_escape()

    # --- actions ------------------------------------------------------------------------

    ACTION_IDS = {"apply": "plan.apply"}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("apply", "export") and self.preview is None:
            return False  # nothing to apply or export yet
        return super().check_action(action, parameters)

    def action_edit(self) -> None:
        self.query_one("#target", Input).focus()

    def action_compare(self) -> None:
        self.query_one(TabbedContent).active = "tab-compare"
        self.run_compare()

    @work(thread=True, exclusive=True, group="plan")
    def run_compare(self) -> None:
        from cockpit.core.whatif import WhatIfError

        app = self.cockpit_app
        try:
            req = self.preview.request if self.preview else app.cockpit.whatif(**self._fields())
            previews = app.cockpit.compare(req)
        except WhatIfError as e:
            app.call_from_thread(self._say, str(e), True)
            return
        app.call_from_thread(self._show_compare, previews)

    def _show_compare(self, previews: dict) -> None:
        self.previews = previews
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
        rows += [("needs", tuple(need_row)), ("cost", tuple(cost_row))]
        self.query_one("#compare", LiveTable).sync(rows)

    def action_apply(self) -> None:
        p = self.preview
        if p is None:
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
                self.app.call_from_thread(self._track, outcome.task)
            return outcome

        self.cockpit_app.perform("plan.apply", body, do)

    def _track(self, task_id: int) -> None:
        self._task_id = task_id
        self._task_text = f"task {task_id} queued for the engine"
        self._paint_summary()

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if self._task_id is not None:
            self._poll_task()

    @work(thread=True, exclusive=True, group="task")
    def _poll_task(self) -> None:
        t = self.cockpit_app.cockpit.task(self._task_id) if self._task_id else None
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
        self.app.call_from_thread(self._task_state, text, t.state in ("done", "failed"))

    def _task_state(self, text: str, final: bool) -> None:
        self._task_text = text
        if final:
            self._task_id = None
        self._paint_summary()

    def action_export(self, fmt: str) -> None:
        from cockpit.core.whatif import document

        p = self.preview
        if p is None:
            return
        doc = document(p)
        r = p.request
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"plan-{p.root.service}-{r.idc or 'any'}-{r.strategy}-{stamp}.{fmt}"
        path = Path.cwd() / name
        text = json.dumps(doc, indent=2) if fmt == "json" else yaml.safe_dump(doc, sort_keys=False)
        try:
            path.write_text(text)
        except OSError as e:
            self.notify(f"cannot write {path}: {e.strerror}", severity="error")
            return
        self.notify(f"plan written to {path}")
