"""What `:scale` and the CLI read and ask for about autoscaling: each service and pool live
(containers current and desired, CPU and QPS with their history), the rules (paused or not), the
next scheduled events, the recent decisions with their explanations; pausing and editing rules
(validated, audited, taking effect at the next evaluation); a day simulated with the rules as
they are in the store."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from cockpit.core.autoscale.decide import window_starts, windows
from cockpit.core.autoscale.rules import rule_problems, rule_spec
from cockpit.engine.actions import Outcome
from cockpit.engine.requests import requestable
from cockpit.store.models import ScaleDecisionRow, ScaleRuleRow, ServiceMetricRow

HISTORY_S = 6 * 3600  # what the charts show
MAX_DECISIONS = 200


@dataclass(frozen=True)
class ServiceScale:
    service: str
    pool: str
    running: int
    starting: int
    desired: int  # the last evaluation's
    cpu_pct: float
    qps: float
    target_cpu_pct: float
    min: int
    max: int
    rules: tuple[str, ...]


@dataclass(frozen=True)
class RuleView:
    name: str
    kind: str
    services: tuple[str, ...]
    paused: bool
    summary: str
    spec: dict


@dataclass(frozen=True)
class DecisionView:
    id: int
    t: float
    service: str
    current: int
    desired: int
    rule: str | None
    formula: str
    note: str
    outcome: str
    task: int | None
    inputs: dict


@dataclass(frozen=True)
class ScheduledView:
    start: float
    end: float
    rule: str
    services: tuple[str, ...]
    what: str


@dataclass(frozen=True)
class ScaleView:
    t: float
    services: list[ServiceScale]
    rules: list[RuleView]
    decisions: list[DecisionView]
    upcoming: list[ScheduledView]
    history: dict[str, list[tuple[float, float, float, int, int]]]  # service -> (t, qps, cpu %, running, desired)


def summary(spec: dict) -> str:
    """A rule in a line, in the world file's words (rates as `100%/15s or 4/15s`)."""
    skip = {"name", "kind", "services", "enabled"}

    def text(k, v) -> str:
        if k in ("up", "down"):
            return " or ".join(f"{p['value']}{'%' if p['kind'] == 'percent' else ''}/{p['period_s']}s" for p in v)
        return ", ".join(v) if isinstance(v, list) else str(v)
    return ", ".join(f"{k} {text(k, v)}" for k, v in spec.items() if k not in skip)


class ScaleFacade:
    """Mixed into Cockpit."""

    def scale_view(self) -> ScaleView:
        from cockpit.engine.autoscale import counts, load_rules  # numpy: not on the way to the first paint

        t = self.clock().t
        rules = load_rules()
        covered: dict[str, list[str]] = {}
        for r, _ in rules:
            for s in r.services:
                covered.setdefault(s, []).append(r.name)
        now = counts()
        hist: dict[str, list] = {}
        for row in (ServiceMetricRow.select().where(ServiceMetricRow.t > t - HISTORY_S)
                    .order_by(ServiceMetricRow.t).tuples()):
            _, service, mt, qps, cpu, running, starting, desired = row
            hist.setdefault(service, []).append((mt, qps, cpu, running, desired))
        services = []
        for s in self.world.services:
            lim = self.world.scaling.limits(s.pool)
            last = hist.get(s.name, [])
            serving, starting = now.get(s.name, (0, 0))
            services.append(ServiceScale(s.name, s.pool, serving, starting, last[-1][4] if last else serving + starting,
                                         last[-1][2] if last else 0.0, last[-1][1] if last else 0.0,
                                         lim.target_cpu_pct, lim.min, lim.max, tuple(covered.get(s.name, ()))))
        views = [RuleView(r.name, r.kind, r.services, paused, summary(rule_spec(r)), rule_spec(r)) for r, paused in rules]
        decisions = [DecisionView(d.id, d.t, d.service, d.current, d.desired, d.rule, d.formula, d.note, d.outcome,
                                  d.task, d.inputs)
                     for d in ScaleDecisionRow.select().order_by(ScaleDecisionRow.id.desc()).limit(MAX_DECISIONS)]
        return ScaleView(t, services, views, decisions, self._upcoming(t, [r for r, p in rules if not p]), hist)

    def _upcoming(self, t: float, rules) -> list[ScheduledView]:
        """Schedule windows open now or opening within a day, soonest first."""
        tz = self.world.traffic.tz
        out = []
        for r in rules:
            if r.kind != "schedule":
                continue
            what = " and ".join(([f"at least {r.min_count}"] if r.min_count is not None else [])
                                + ([f"x{r.factor:g}"] if r.factor else []))
            length = (r.lead_min + r.hold_min) * 60
            spans = [(start, end) for _, start, end in windows(r, t, tz)]
            spans += [(start, start + length) for start in window_starts(r, t, t + 86400, tz)]
            out += [ScheduledView(start, end, r.name, r.services, what) for start, end in spans]
        return sorted(out, key=lambda v: v.start)[:20]

    @requestable
    def set_rule_paused(self, name: str, paused: bool) -> Outcome:
        row = ScaleRuleRow.get_or_none(ScaleRuleRow.name == name)
        if row is None:
            return Outcome(False, f"no autoscaling rule named {name!r}")

        def do() -> str:
            ScaleRuleRow.update(paused=paused, updated_by=self.cfg.user, updated_real=time.time()).where(
                ScaleRuleRow.name == name).execute()
            return f"rule {name} {'paused' if paused else 'resumed'}: from the next evaluation"

        return self._act("scale.pause_rule", name, {"paused": paused}, do)

    def rule_problem(self, spec: dict) -> str | None:
        """Why this rule cannot be, in one line naming the field; None when it can."""
        from cockpit import yamlcheck
        from cockpit.world import schema

        root = schema()
        doc = yamlcheck.Document("rule", spec, {})
        shape = yamlcheck.validate(doc, dict(root["$defs"]["rule"], **{"$defs": root["$defs"]}))
        if shape:
            return f"{shape[0].field or 'rule'}: {shape[0].message}"
        spec.update(doc.data)  # integral floats made ints, as the world file's are
        unknown = [s for s in spec["services"] if s not in {x.name for x in self.world.services}]
        if unknown:
            return f"services: no service named {unknown[0]!r} (known: {', '.join(x.name for x in self.world.services)})"
        problems = rule_problems(spec)
        if problems:
            field, why = problems[0]
            return f"{field or 'rule'}: {why}"
        return None

    @requestable
    def edit_rule(self, name: str, spec: dict) -> Outcome:
        """Replace a rule's fields (its name stays); checked like the world file's rules."""
        row = ScaleRuleRow.get_or_none(ScaleRuleRow.name == name)
        if row is None:
            return Outcome(False, f"no autoscaling rule named {name!r}")
        spec = dict(spec, name=name)
        why = self.rule_problem(spec)
        if why:
            return Outcome(False, f"rule {name}: {why}")

        def do() -> str:
            ScaleRuleRow.update(spec=spec, updated_by=self.cfg.user, updated_real=time.time()).where(
                ScaleRuleRow.name == name).execute()
            return f"rule {name} changed: {summary(spec)}; from the next evaluation"

        return self._act("scale.edit_rule", name, {"from": row.spec, "to": spec}, do)

    def simulate_day(self, policy: str = "rules", seed: int = 0):
        """The demo day under `policy`, with the rules as they are in the store now (paused ones
        left out): what `:scale` charts as its what-if."""
        from cockpit.core.autoscale.simulate import simulate
        from cockpit.core.autoscale.trace import demo_trace
        from cockpit.engine.autoscale import load_rules

        rules = tuple(r for r, paused in load_rules() if not paused)
        w = replace(self.world, autoscaling=rules)
        return simulate(w, demo_trace(w, seed), policy)
