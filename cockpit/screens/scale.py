"""`:scale`: autoscaling, live. Four tabs: each service with its pool (containers running,
starting and desired, CPU against the pool's target, QPS, limits, the rules covering it) and the
selected one's QPS and CPU over the last 6 hours; the rules (pause or resume with `p`, edit with
`e`); the recent decisions with the selected one's explanation and the next scheduled events; a
day simulated under the rules as they are now, an HPA and static peak capacity, side by side.

`+` and `-` scale the selected service by hand (up: the placement preview, then confirmation,
then a scale task; down: confirmation, then a scale-in task); `h` sets off a hot event in the
demo, to watch the autoscaler answer it in Decisions.

The store is read in a thread when a new platform tick arrives, when the view comes back on top
and after each action; the rows and the charts' data are built in a thread (ViewScreen.repaint)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from cockpit.engine.actions import Outcome
from cockpit.engine.facade import Snapshot
from cockpit.engine.facade_scale import RuleView, ScaleView
from cockpit.screens.base import OneRead, ViewScreen
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.live_table import LiveTable
from cockpit.widgets.scale_chart import ScaleChart
from cockpit.widgets.scale_rows import (
    DECISION_COLUMNS,
    POLICIES,
    POLICY_COLUMNS,
    SERVICE_COLUMNS,
    Paint,
    Shown,
    compute_rows,
    decision_detail,
    preview_text,
    rule_columns,
    rule_detail,
    rule_form,
    rule_spec_from,
)
from cockpit.widgets.view_tabs import ViewTabs


class ScaleScreen(OneRead, ViewScreen):
    VIEW = "scale"
    ALIASES = ("s", "autoscale", "autoscaling", "rules", "scaling")
    HELP = "Autoscaling: services live, rules, decisions, a day simulated"
    CSS_PATH = "scale.tcss"
    AUTO_FOCUS = "#services"

    # The footer shows the first that fit (at 80 columns: p, e, +); `?` and ctrl+p list them all.
    BINDINGS = [
        Binding("p", "pause_rule", "Pause/resume", id="scale.pause_rule"),
        Binding("e", "edit_rule", "Edit rule…", id="scale.edit_rule"),
        Binding("plus", "scale_up", "Scale up…", id="scale.up"),
        Binding("h", "hot_event", "Hot event…", id="scale.hot_event"),
        Binding("minus", "scale_down", "Scale down…", id="scale.down", show=False),
        Binding("left", "service(-1)", "Chart the previous service", id="scale.service_previous", show=False),
        Binding("right", "service(1)", "Chart the next service", id="scale.service_next", show=False),
        Binding("n", "reseed", "What-if: another seed", id="scale.reseed", show=False),
    ]
    ACTION_IDS = {"scale_up": "plan.apply", "scale_down": "service.scale_in", "pause_rule": "scale.pause_rule",
                  "edit_rule": "scale.edit_rule", "hot_event": "sim.hot_event"}

    def __init__(self) -> None:
        super().__init__()
        self.scale: ScaleView | None = None
        self.shown: Shown | None = None
        self.days: dict | None = None  # policy -> DayResult of the what-if
        self.seed = 0
        self.policy = "rules"
        self.service: str | None = None
        self._sim_gen = 0
        self._sim_rules: tuple | None = None  # the rules the what-if was simulated with

    def body(self) -> ComposeResult:
        world = self.cockpit_app.cockpit.world
        yield Static("reading the autoscaler…", id="summary")
        with ViewTabs(id="tabs"):
            with TabPane("Services", id="tab-services"):
                yield LiveTable(SERVICE_COLUMNS, id="services")
                yield ScaleChart(id="history")
            with TabPane("Rules", id="tab-rules"):
                yield LiveTable(rule_columns([r.name for r in world.autoscaling]), id="rules")
                yield Static("", id="rule-detail", classes="detail")
            with TabPane("Decisions", id="tab-decisions"):
                yield LiveTable(DECISION_COLUMNS, id="decisions")
                yield Static("", id="decision-detail", classes="detail")
                yield Static("", id="upcoming")
            with TabPane("What-if", id="tab-whatif"):
                yield Static("", id="day-note")
                yield LiveTable(POLICY_COLUMNS, id="policies")
                yield ScaleChart(id="day")

    def on_mount(self) -> None:
        for bar in self.query(Tabs):  # `]` and `[` switch tabs; the keys stay on the tables
            bar.can_focus = False
        services = self.cockpit_app.cockpit.world.services
        covered = {s for r in self.cockpit_app.cockpit.world.autoscaling for s in r.services}
        self.service = next((s.name for s in services if s.name in covered), services[0].name if services else None)
        self.load()

    # --- reading the store (threads only) ---------------------------------------------------------

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        self.load()

    def _start_read(self) -> None:
        self._read()

    @work(thread=True, group="scale-read", exit_on_error=False, description="read the autoscaler")
    def _read(self) -> None:
        try:
            view, error = self.cockpit_app.cockpit.scale_view(), None
        except Exception as e:  # a locked or damaged store: say so, keep what is shown
            view, error = None, f"{type(e).__name__}: {e}"
        self.on_loop(self._read_done, view, error)

    def _take(self, view: ScaleView) -> bool:
        changed = view != self.scale
        self.scale = view
        return changed

    def _repainted(self) -> None:
        if self._tab() == "tab-whatif":
            self._simulate_if_stale()

    def _rules_now(self) -> tuple:
        return tuple((r.name, r.paused, repr(r.spec)) for r in self.scale.rules) if self.scale else ()

    def _simulate_if_stale(self) -> None:
        if self.scale is not None and (self.days is None or self._sim_rules != self._rules_now()):
            self._simulate()

    def _simulate(self) -> None:
        self._sim_gen += 1
        self.days = None
        self._sim_rules = self._rules_now()
        self.repaint()
        self._run_day(self._sim_gen, self.seed)

    @work(thread=True, group="scale-sim", exit_on_error=False, description="simulate a day")
    def _run_day(self, gen: int, seed: int) -> None:
        c = self.cockpit_app.cockpit
        try:
            days, error = {p: c.simulate_day(p, seed) for p in POLICIES}, None
        except Exception as e:  # as for the store read: in one line, in place
            days, error = None, f"cannot simulate the day: {type(e).__name__}: {e}"
        self.on_loop(self._day_done, gen, days, error)

    def _day_done(self, gen: int, days: dict | None, error: str | None) -> None:
        if gen != self._sim_gen or not self.is_attached:
            return
        if error:
            self.query_one("#day-note", Static).update(error)
            self.query_one("#day-note", Static).add_class("-error")
            return
        self.query_one("#day-note", Static).remove_class("-error")
        self.days = days
        self.repaint()

    # --- painting (base.ViewScreen: paint_state on the loop, compute in a thread, show) ------------

    def paint_state(self) -> Paint:
        world = self.cockpit_app.cockpit.world
        return Paint(self.scale, world.traffic.tz, self.service, self.query_text.strip(), self.days, self.policy,
                     self.seed)

    def compute(self, state: Paint) -> Shown:
        return compute_rows(state)

    def show(self, shown: Shown) -> None:
        self.shown = shown
        for table_id, rows in shown.rows.items():
            self.query_one(f"#{table_id}", LiveTable).sync(rows)
        self.query_one("#summary", Static).update(self._with_error(shown.summary))
        self.query_one("#history", ScaleChart).plot(shown.history, shown.history_note)
        self.query_one("#day", ScaleChart).plot(shown.day, "")
        if self.days is not None or not self.query_one("#day-note", Static).has_class("-error"):
            self.query_one("#day-note", Static).update(shown.day_note)
        self.query_one("#upcoming", Static).update(shown.upcoming)
        policies = self.query_one("#policies", LiveTable)
        if policies.row_count and policies.current_key() != self.policy:
            policies.move_to_key(self.policy)
        services = self.query_one("#services", LiveTable)
        if self.service and services.current_key() != self.service and self.service in services.row_keys:
            services.move_to_key(self.service)
        self._paint_details()

    def _paint_details(self) -> None:
        s = self.shown
        if s is None:
            return
        tz = self.cockpit_app.cockpit.world.traffic.tz
        rule = s.rules.get(self._key("rules") or "")
        self.query_one("#rule-detail", Static).update(
            rule_detail(rule) if rule else "No rule matches the filter." if s.rules else
            "No autoscaling rules: add them under `autoscaling:` in the world file.")
        d = s.decisions.get(self._key("decisions") or "")
        self.query_one("#decision-detail", Static).update(
            decision_detail(d, tz) if d else "No decision matches the filter." if s.decisions else
            "No decisions yet: the engine evaluates the rules every interval of platform time; "
            "h sets off a hot event to watch them answer.")

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        table = event.table.id
        if table == "services" and event.key is not None and event.key != self.service:
            self.service = event.key
            self.repaint()
        elif table == "policies" and event.key is not None and event.key != self.policy:
            self.policy = event.key
            self.repaint()
        else:
            self._paint_details()

    def _key(self, table_id: str) -> str | None:
        return self.query_one(f"#{table_id}", LiveTable).current_key()

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """`]` `[` (or a click): the pane's table takes the keys; the what-if runs when first shown."""
        tables = event.pane.query(LiveTable)
        if tables:
            tables.first().focus()
        if event.pane.id == "tab-whatif":
            self._simulate_if_stale()

    # --- the selected service, the what-if's seed -------------------------------------------------

    def action_service(self, step: int) -> None:
        if self.scale is None or not self.scale.services:
            return
        covered = [s.service for s in self.scale.services if s.rules] or [s.service for s in self.scale.services]
        k = covered.index(self.service) if self.service in covered else -step
        self.service = covered[(k + step) % len(covered)]
        self.repaint()

    def action_reseed(self) -> None:
        self.seed += 1
        if self._tab() != "tab-whatif":
            self.query_one(TabbedContent).active = "tab-whatif"  # its activation runs the simulation
            self.days = None
            return
        self._simulate()

    # --- actions --------------------------------------------------------------------------------------

    def _after(self, do):
        """`do` (a facade call, in a thread), then read the store again: the view shows the change
        without waiting for the next platform tick (none comes while no engine runs)."""
        def run() -> Outcome:
            try:
                return do()
            finally:
                self.on_loop(self.load)
        return run

    def _selected_rule(self, what: str) -> RuleView | None:
        rule = self.shown.rules.get(self._key("rules") or "") if self.shown else None
        if self._tab() != "tab-rules" or rule is None:
            self.notify(f"select a rule to {what} (Rules tab: ] to get there)", severity="warning")
            return None
        return rule

    def action_pause_rule(self) -> None:
        rule = self._selected_rule("pause or resume")
        if rule is None:
            return
        c, paused = self.cockpit_app.cockpit, not rule.paused
        body = (f"{'Pause' if paused else 'Resume'} rule {rule.name} ({rule.kind} on {', '.join(rule.services)}).\n"
                + ("It stops deciding from the next evaluation; the other rules go on."
                   if paused else "It decides again from the next evaluation."))
        self.cockpit_app.perform("scale.pause_rule", body, self._after(lambda: c.set_rule_paused(rule.name, paused)))

    def action_edit_rule(self) -> None:
        rule = self._selected_rule("edit")
        if rule is not None:
            self._edit_form(rule, {}, "")

    def _edit_form(self, rule: RuleView, typed: dict, error: str) -> None:
        """The rule's settings, prefilled (or as typed, with the error above them)."""
        fields = [Field(fid, label, typed.get(fid, value)) for fid, label, value in rule_form(rule)]
        note = (f"✗ {error}\n" if error else "") + \
            f"{rule.kind} rule. An empty field leaves the setting out (its default). Takes effect at the next evaluation."

        def chosen(values: dict | None) -> None:
            if values is not None:
                self._check_edit(rule, values)

        self.cockpit_app.push_screen(FormScreen(f"Edit rule {rule.name}", fields, submit="Save…", note=note),
                                     callback=chosen)

    def _check_edit(self, rule: RuleView, values: dict) -> None:
        try:
            spec = rule_spec_from(rule, values)
        except ValueError as e:
            self._edit_form(rule, values, str(e))
            return
        self._judge_edit(rule, values, spec)

    @work(thread=True, group="scale-edit", exit_on_error=False, description="check a rule")
    def _judge_edit(self, rule: RuleView, values: dict, spec: dict) -> None:
        why = self.cockpit_app.cockpit.rule_problem(dict(spec, name=rule.name))
        self.on_loop(self._edit_judged, rule, values, spec, why)

    def _edit_judged(self, rule: RuleView, values: dict, spec: dict, why: str | None) -> None:
        if why is not None:
            self._edit_form(rule, values, why)  # the form again, as typed, the reason on top
            return
        from cockpit.engine.facade_scale import summary

        c = self.cockpit_app.cockpit
        body = (f"Rule {rule.name} ({rule.kind}):\nfrom {rule.summary or '(defaults)'}\nto   {summary(spec) or '(defaults)'}"
                f"\non {', '.join(spec['services'])}. It takes effect at the next evaluation.")
        self.cockpit_app.perform("scale.edit_rule", body, self._after(lambda: c.edit_rule(rule.name, spec)))

    def action_hot_event(self) -> None:
        self.cockpit_app.open_hot_event()

    def _count_form(self, title: str, submit: str, then) -> None:
        names = tuple(s.name for s in self.cockpit_app.cockpit.world.services)
        fields = [Field("service", "Service", self.service or (names[0] if names else ""), names),
                  Field("count", "Containers", "10")]

        def chosen(values: dict | None) -> None:
            if values is None:
                return
            try:
                count = int(values["count"])
            except ValueError:
                self.notify(f"containers: a whole number, got {values['count']!r}", severity="error")
                return
            if values["service"] not in names:
                self.notify(f"no service named {values['service']!r}", severity="error")
                return
            then(values["service"], count)

        self.cockpit_app.push_screen(FormScreen(title, fields, submit=submit), callback=chosen)

    def action_scale_up(self) -> None:
        self._count_form("Scale up by hand: place more containers", "Preview…", self._preview_up)

    def _preview_up(self, service: str, count: int) -> None:
        self.notify(f"planning {service} +{count}…", timeout=2)
        self._run_preview(service, count)

    @work(thread=True, group="scale-preview", exit_on_error=False, description="preview a scale-up")
    def _run_preview(self, service: str, count: int) -> None:
        from cockpit.core.whatif import WhatIfError

        c = self.cockpit_app.cockpit
        try:
            p = c.preview(c.whatif(target=service, count=str(count), idc="", strategy="spread", filters="", seed="0"))
        except WhatIfError as e:
            self.on_loop(self.notify, str(e), severity="error")
            return
        except Exception as e:  # the store went away, say: one line
            self.on_loop(self.notify, f"cannot preview: {type(e).__name__}: {e}", severity="error")
            return
        self.on_loop(self._confirm_up, p)

    def _confirm_up(self, p) -> None:
        c = self.cockpit_app.cockpit
        self.cockpit_app.perform("plan.apply", preview_text(p), self._after(lambda: c.apply_plan(p)))

    def action_scale_down(self) -> None:
        def confirm(service: str, count: int) -> None:
            s = next((x for x in self.scale.services if x.service == service), None) if self.scale else None
            now = f" (now {s.running} running, the pool's min {s.min})" if s else ""
            body = (f"Stop {count} containers of {service}{now}.\nThe engine stops them where {service} is most "
                    "crowded first. The autoscaler may scale it back up at its next evaluation if its rules ask.")
            c = self.cockpit_app.cockpit
            self.cockpit_app.perform("service.scale_in", body, self._after(lambda: c.scale_in(service, count)))

        self._count_form("Scale down by hand: stop containers", "Stop…", confirm)
