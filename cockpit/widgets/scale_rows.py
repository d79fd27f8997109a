"""What `:scale` shows, built from the facade's ScaleView and the simulated days off the event
loop: the columns of each table, the rows (filtered by `/`), the details under them, the charts'
data, and the rule form's fields (a rule's settings as text and back). Pure: no widget, no store."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import numpy as np
import yaml
from rich.text import Text

from cockpit.core.autoscale.rules import USES
from cockpit.engine.facade_scale import DecisionView, RuleView, ScaleView, ScheduledView, ServiceScale
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column

POLICIES = ("rules", "hpa", "static-peak")
SLO_MARGIN = 10.0  # CPU more than this many points over the target breaks the SLO (as the simulation counts)
SIM_BUCKET = 5  # minutes of the simulated day per point of its chart

# Narrower than 80 columns the pool goes first (the chart's title says it), then min..max, then
# the rules, then the starting count; service, running, desired, CPU and QPS stay.
SERVICE_COLUMNS = [
    Column("Service", "service", 9),
    Column("Pool", "pool", 9, drop=5),
    Column("Run", "running", 5),
    Column("Start", "starting", 5, drop=2),
    Column("Want", "desired", 5),
    Column("CPU/target", "cpu", 10),
    Column("QPS", "qps", 6),
    Column("Min..max", "limits", 11, drop=4),
    Column("Rules", "rules", None, drop=3),
]
DECISION_COLUMNS = [
    Column("Time", "t", 9),
    Column("Service", "service", 9),
    Column("Change", "change", 11),
    Column("Rule", "rule", 14, drop=2),
    Column("Outcome", "outcome", None, drop=1),
]
POLICY_COLUMNS = [
    Column("Policy", "policy", 11),
    Column("SLO min", "violation_minutes", 7),
    Column("Cont-hours", "container_hours", 10),
    Column("Cost", "cost", 9, drop=2),
    Column("Actions", "actions", 7, drop=1),
    Column("Wait", "longest_wait_s", 7, drop=3),
]


def rule_columns(names: list[str]) -> list[Column]:
    return [
        Column("Rule", "name", max(6, min(20, max((len(n) for n in names), default=6)))),
        Column("Kind", "kind", 8, drop=3),
        Column("Services", "services", 18, drop=2),
        Column("State", "state", 6),
        Column("Settings", "summary", None, drop=1),
    ]


def _right(value: str, style: str = "") -> Text:
    return Text(value, justify="right", style=style)


def qps_text(q: float) -> str:
    if q >= 999_500:
        return f"{q / 1e6:.1f}M"
    if q >= 9_995:
        return f"{q / 1e3:.0f}k"
    if q >= 1000:
        return f"{q / 1e3:.1f}k"
    return f"{q:.0f}"


def cpu_text(s: ServiceScale, measured: bool) -> Text:
    """`38% / 40`: CPU used of reserved against the pool's target; yellow over it, red when the
    SLO breaks (more than 10 points over)."""
    if not measured:
        return _right(f"— / {s.target_cpu_pct:g}", "dim")
    style = ("bold red" if s.cpu_pct > s.target_cpu_pct + SLO_MARGIN else
             "yellow" if s.cpu_pct > s.target_cpu_pct else "")
    return _right(f"{s.cpu_pct:.0f}% / {s.target_cpu_pct:g}", style)


def when(t: float, tz: tzinfo, fmt: str = "%a %H:%M") -> str:
    return datetime.fromtimestamp(t, tz).strftime(fmt)


# --- what compute() gets and gives -------------------------------------------------------------


@dataclass(frozen=True)
class Paint:
    view: ScaleView | None
    tz: tzinfo
    service: str | None  # the selected service: its chart, and the what-if's
    query: str
    days: dict | None  # policy -> DayResult of the what-if, None until simulated
    policy: str  # the what-if's policy charted
    seed: int


@dataclass
class Shown:
    rows: dict[str, list]  # table id -> [(key, cells)]
    summary: Text
    history: ChartSpec | None
    history_note: str
    day: ChartSpec | None
    day_note: Text
    upcoming: Text
    rules: dict[str, RuleView] = field(default_factory=dict)
    decisions: dict[str, DecisionView] = field(default_factory=dict)


def compute_rows(p: Paint) -> Shown:
    v = p.view
    q = p.query
    if v is None:
        empty = {"services": [], "rules": [], "decisions": [], "policies": []}
        return Shown(empty, Text("reading the autoscaler…", style="dim"), None, "", None, Text(""), Text(""))
    measured = {name for name, h in v.history.items() if h}
    services = [(s.service, service_cells(s, s.service in measured)) for s in v.services]
    rules = [(r.name, rule_cells(r)) for r in v.rules]
    decisions = [(str(d.id), decision_cells(d, p.tz)) for d in v.decisions]
    rows = {"services": _filtered(services, q), "rules": _filtered(rules, q), "decisions": _filtered(decisions, q),
            "policies": policy_rows(p.days) if p.days else []}
    svc = next((s for s in v.services if s.service == p.service), None)
    history, note = (history_chart(v, svc, p.tz) if svc else (None, "no service selected"))
    day, day_note = day_chart(p, svc)
    return Shown(rows, summary_text(v, p.tz), history, note, day, day_note, upcoming_text(v.upcoming, p.tz),
                 {r.name: r for r in v.rules}, {str(d.id): d for d in v.decisions})


def _filtered(rows: list, q: str) -> list:
    if not q:
        return rows
    return [(k, cells) for k, cells in rows if matches(q, " ".join(c.plain if isinstance(c, Text) else c for c in cells))]


# --- the tables ---------------------------------------------------------------------------------


def service_cells(s: ServiceScale, measured: bool) -> tuple:
    moving = s.desired != s.running + s.starting
    return (s.service, s.pool, _right(str(s.running)), _right(str(s.starting) if s.starting else "-"),
            _right(str(s.desired), "bold" if moving else ""), cpu_text(s, measured),
            _right(qps_text(s.qps) if measured else "—"), _right(f"{s.min}..{s.max}"),
            ", ".join(s.rules) if s.rules else Text("no rule", style="dim"))


def rule_cells(r: RuleView) -> tuple:
    return (r.name, r.kind, ",".join(r.services), Text("paused", style="bold yellow") if r.paused else "active",
            r.summary)


def decision_cells(d: DecisionView, tz: tzinfo) -> tuple:
    arrow = "↑" if d.desired > d.current else "↓"
    outcome = d.outcome or ("task %d" % d.task if d.task else "recorded")
    return (when(d.t, tz), d.service, f"{d.current}→{d.desired}{arrow}", d.rule or Text("limits", style="dim"),
            Text(outcome, style="bold red" if outcome.startswith("no host") else ""))


def policy_rows(days: dict) -> list:
    rows = []
    best = {k: min(d.summary()[k] for d in days.values())
            for k in ("violation_minutes", "container_hours", "cost", "longest_wait_s")}
    for policy in POLICIES:
        d = days.get(policy)
        if d is None:
            continue
        s = d.summary()

        def cell(key: str, text: str) -> Text:
            return _right(text, "bold green" if key in best and s[key] == best[key] and len(days) > 1 else "")

        rows.append((policy, (policy, cell("violation_minutes", str(s["violation_minutes"])),
                              cell("container_hours", f"{s['container_hours']:,.0f}"), cell("cost", f"{s['cost']:,.0f}"),
                              cell("actions", str(s["actions"])), cell("longest_wait_s", wait_text(s["longest_wait_s"])))))
    return rows


def wait_text(s: float) -> str:
    return "-" if not s else f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


# --- lines under the tables ----------------------------------------------------------------------


def summary_text(v: ScaleView, tz: tzinfo) -> Text:
    paused = sum(r.paused for r in v.rules)
    covered = sum(bool(s.rules) for s in v.services)
    out = Text(f"{covered} of {len(v.services)} services under {len(v.rules)} rules")
    if paused:
        out.append(f" ({paused} paused)", style="bold yellow")
    out.append(f" · {len(v.decisions)} decisions")
    if v.decisions:
        out.append(f", last {when(v.decisions[0].t, tz, '%H:%M')}")
    if v.upcoming:
        u = v.upcoming[0]
        out.append(f" · next: {u.rule} {when(u.start, tz, '%H:%M')}")
    return out


def upcoming_text(upcoming: list[ScheduledView], tz: tzinfo) -> Text:
    if not upcoming:
        return Text("Next scheduled: none (no active schedule rule)", style="dim")
    out = Text("Next: ", style="bold")
    for k, u in enumerate(upcoming[:4]):
        if k:
            out.append(" · ")
        out.append(f"{when(u.start, tz, '%a %H:%M')}–{when(u.end, tz, '%H:%M')} {u.rule} {u.what} "
                   f"({','.join(u.services)})")
    return out


def rule_detail(r: RuleView) -> Text:
    state = Text("paused", style="bold yellow") if r.paused else Text("active", style="green")
    return Text.assemble((r.name, "bold"), f" ({r.kind}) on {', '.join(r.services)}: ", state, "\n",
                         r.summary or "(defaults)", "\n", ("p: pause or resume · e: edit (from the next evaluation)", "dim"))


def decision_detail(d: DecisionView, tz: tzinfo) -> Text:
    i = d.inputs
    head = Text.assemble((f"{when(d.t, tz, '%a %d %b %H:%M')} {d.service}: {d.current} → {d.desired}", "bold"),
                         f" by {d.rule}" if d.rule else " (kept within the pool's limits)")
    formula = Text(f"formula: {d.formula or '-'}")
    seen = Text(f"inputs: CPU {i.get('cpu_pct', 0):.1f}%, {i.get('qps', 0):,.0f} qps, {i.get('running', 0)} serving, "
                f"{i.get('starting', 0)} starting")
    tail = Text(f"note: {d.note}" if d.note else "note: -", style="yellow" if d.note else "dim")
    task = Text(f"task: {d.task}" if d.task else "task: none", style="")
    if d.outcome:
        task.append(f" · {d.outcome}")
    return Text("\n").join([head, formula, seen, tail, task])


# --- the charts' data ------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float, ...]
    side: str  # "left" or "right": which y axis
    color: str


@dataclass(frozen=True)
class Panel:
    series: tuple[Series, ...]  # each labelled with its unit: the legend is the axes' only label
    hline: tuple[float, str, str] | None = None  # (value, side, color): the target
    right_max: float | None = None  # a fixed top for the right axis (CPU %: 100)


@dataclass(frozen=True)
class ChartSpec:
    title: str
    x: tuple[float, ...]
    ticks: tuple[tuple[float, str], ...]  # x position, label
    panels: tuple[Panel, ...]  # the first always shows; the others when the widget is tall enough


def history_chart(v: ScaleView, s: ServiceScale, tz: tzinfo) -> tuple[ChartSpec | None, str]:
    """The service's QPS (left) and CPU % (right, with the pool's target) over the last 6 hours."""
    h = v.history.get(s.service, [])
    if len(h) < 2:
        return None, (f"{s.service}: no measurements yet. The autoscaler records QPS and CPU at each evaluation "
                      "while the engine runs; the chart shows the last 6 hours.")
    t0 = h[0][0]
    x = tuple((row[0] - t0) / 3600 for row in h)
    return ChartSpec(f"{s.service} ({s.pool}): traffic and CPU % since {when(t0, tz, '%H:%M')}", x, hour_ticks(t0, x[-1], tz), (
        Panel((Series("kqps", tuple(row[1] / 1000 for row in h), "left", "cyan"),
               Series("CPU %", tuple(row[2] for row in h), "right", "orange")),
              (s.target_cpu_pct, "right", "red"), 100.0),
    )), ""


def hour_ticks(t0: float, span_h: float, tz: tzinfo) -> tuple[tuple[float, str], ...]:
    """A tick at each whole hour from t0 (local time), every 1, 2 or 3 hours as the span asks."""
    step = 1 if span_h <= 6 else 3
    first = math.ceil(t0 / 3600) * 3600  # whole hours are whole in every zone the world may use (whole-hour offsets)
    out = []
    t = first
    while (t - t0) / 3600 <= span_h + 1e-9:
        local = datetime.fromtimestamp(t, tz)
        if local.hour % step == 0:
            out.append(((t - t0) / 3600, local.strftime("%H:%M")))
        t += 3600
    return tuple(out)


def _buckets(a: np.ndarray, how: str) -> tuple[float, ...]:
    n = len(a) // SIM_BUCKET * SIM_BUCKET
    b = np.asarray(a[:n], dtype=float).reshape(-1, SIM_BUCKET)
    return tuple(float(x) for x in (b.max(axis=1) if how == "max" else b[:, -1]))


def day_chart(p: Paint, svc: ServiceScale | None) -> tuple[ChartSpec | None, Text]:
    """The simulated day for the selected service under the selected policy: traffic (left) and
    serving containers (right); CPU % with the pool's target below when there is room."""
    if p.days is None:
        return None, Text(f"simulating the day (seed {p.seed}) under {', '.join(POLICIES)}…", style="dim")
    name = svc.service if svc else None
    day = p.days.get(p.policy)
    if day is None or name not in day.series:
        return None, Text(f"no simulated series for {name or 'the selected service'}", style="dim")
    s = day.series[name]
    qps, serving, cpu = _buckets(np.asarray(s["qps"]) / 1000, "max"), _buckets(s["serving"], "last"), _buckets(s["cpu_pct"], "max")
    x = tuple(k * SIM_BUCKET / 60 for k in range(len(qps)))
    ticks = tuple((float(h), f"{h:02d}:00") for h in range(0, 25, 3))
    target = svc.target_cpu_pct if svc else 50.0
    over = int((np.asarray(s["cpu_pct"]) > target + SLO_MARGIN).sum())
    note = Text.assemble(("What-if ", "bold"), f"{name} under ", (p.policy, "bold"), f" · seed {p.seed} · ",
                         (f"{over} min over {target + SLO_MARGIN:g}% CPU", "bold red" if over else "green"),
                         (" · ←/→ service · ↑/↓ policy · n new seed", "dim"))
    return ChartSpec(f"{name}: traffic and serving containers, {p.policy}, seed {p.seed}", x, ticks, (
        Panel((Series("traffic kqps", qps, "left", "cyan"), Series("serving containers", serving, "right", "green"))),
        Panel((Series("CPU %", cpu, "left", "orange"),), (target, "left", "red")),
    )), note


def preview_text(p) -> str:
    """A scale-up's placement preview, to confirm: where the containers go, what comes with them
    (the templates' ratios), what does not fit and what it would take."""
    from collections import Counter

    from cockpit.cli_text import need_text

    root = p.root
    by_idc: Counter = Counter()
    for h, n in root.plan.per_host().items():
        by_idc[str(p.before.idc[h])] += n
    where = ", ".join(f"{idc} {n}" for idc, n in by_idc.most_common())
    lines = [p.request.describe(),
             f"{root.service} +{root.plan.placed} on {root.metrics.hosts_touched} hosts" + (f" ({where})" if where else "")]
    if p.dependencies:
        lines.append("with " + ", ".join(f"{d.service} +{d.plan.placed}" for d in p.dependencies) + " (template ratios)")
    left = sum(d.plan.unplaced for d in p.parts)
    if left:
        lines.append(f"{left} do not fit and are left out; they would need {need_text(root.need)} "
                     "(the autoscaler borrows or orders such hosts; by hand: :hosts, :ecs)")
    else:
        lines.append("All on hosts already in service: no added cost.")
    return "\n".join(lines)


# --- the rule form: a rule's settings as text, and back ---------------------------------------------

RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|pods?)\s*(?:per|/)\s*(\d+)\s*s\s*$")
LABELS = {
    "threshold_pct": "CPU over (%)", "factor": "Factor (x)", "at": "At (HH:MM, comma-separated)",
    "days": "Days (daily, weekdays, weekends)", "lead_min": "Lead (min before)", "hold_min": "Hold (min)",
    "min_count": "At least (containers; empty: none)", "target_pct": "Target CPU (%)",
    "tolerance": "Tolerance (0.1 = ±10%)", "up_window_s": "Scale-up stabilisation window (s)",
    "down_window_s": "Scale-down stabilisation window (s)",
    "up": "Scale-up rates (e.g. 100% per 15s, 4 pods per 15s)", "down": "Scale-down rates (e.g. 100% per 15s)",
    "horizon_min": "Horizon (min)",
}
DEFAULTS = {"days": "daily", "lead_min": 30, "hold_min": 60, "tolerance": 0.1, "up_window_s": 0, "down_window_s": 300,
            "horizon_min": 30}


def rates_text(policies: list[dict]) -> str:
    return ", ".join(f"{p['value']:g}{'%' if p['kind'] == 'percent' else ' pods'} per {p['period_s']}s" for p in policies)


def parse_rates(text: str) -> list[dict]:
    out = []
    for part in [x for x in text.split(",") if x.strip()]:
        m = RATE.match(part)
        if m is None:
            raise ValueError(f"{part.strip()!r} is not a rate: write `100% per 15s` or `4 pods per 15s`")
        value = float(m.group(1))
        out.append({"kind": "percent" if m.group(2) == "%" else "pods", "value": int(value) if value.is_integer() else value,
                    "period_s": int(m.group(3))})
    return out


def setting_text(key: str, value) -> str:
    if value is None:
        return ""
    if key in ("up", "down"):
        return rates_text(value)
    if key in ("at", "services"):
        return ", ".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rule_form(r: RuleView) -> list[tuple[str, str, str]]:
    """(field id, label, prefilled text): the services, then every setting the rule's kind reads."""
    out = [("services", "Services (comma-separated)", setting_text("services", r.spec.get("services", r.services)))]
    for key in sorted(USES[r.kind]):
        out.append((key, LABELS.get(key, key), setting_text(key, r.spec.get(key, DEFAULTS.get(key)))))
    return out


def number(text: str) -> int | float:
    """A number as typed: 40, 0.1, 1e9 (an integral value stays an integer)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def rule_spec_from(r: RuleView, values: dict[str, str]) -> dict:
    """The rule as the form says it (an empty field: the setting is left out, its default applies).
    ValueError names the field whose text cannot be read; the values themselves are judged by
    the facade (rule_problem), as the world file's are."""
    spec: dict = {"kind": r.kind, "services": [s.strip() for s in values.get("services", "").split(",") if s.strip()]}
    if r.spec.get("enabled") is False:  # an edit keeps a disabled rule disabled
        spec["enabled"] = False
    for key in sorted(USES[r.kind]):
        text = values.get(key, "").strip()
        if not text:
            continue
        try:
            if key in ("up", "down"):
                spec[key] = parse_rates(text)
            elif key == "at":
                spec[key] = [x.strip() for x in text.split(",") if x.strip()]
            elif key == "days":
                spec[key] = text
            else:
                spec[key] = number(text)
        except (ValueError, yaml.YAMLError) as e:
            raise ValueError(f"{key}: {' '.join(str(e).split())}") from None
    return spec
