"""One evaluation for one service: what each rule recommends, and the decision.

The decision is the highest recommendation (a rule that sees a need wins over one that sees
none), kept within the pool's [min, max]; a scale-down waits out the pool's cool-down after the
last change. Every recommendation carries its formula with the numbers, so the decision explains
itself: inputs, rule, formula, result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from cockpit.core.autoscale import hpa
from cockpit.core.autoscale.memory import Memory
from cockpit.domain import AutoscaleRule, PoolLimits, Service

History = Callable[[str, float], "float | None"]  # a service's QPS at a past time, if known
WEEKDAYS = {"daily": range(7), "weekdays": range(5), "weekends": range(5, 7)}


@dataclass(frozen=True)
class Observation:
    """A service as the rules see it at `t`."""

    t: float
    running: int  # containers serving
    starting: int  # asked for, not yet serving
    cpu_pct: float  # CPU used of reserved, over the serving containers
    qps: float
    hot: tuple[tuple[str, float], ...] = ()  # hot events running for it: (name, start)

    @property
    def total(self) -> int:
        return self.running + self.starting


@dataclass(frozen=True)
class Recommendation:
    rule: str
    kind: str
    count: int
    formula: str


@dataclass(frozen=True)
class Decision:
    t: float
    service: str
    pool: str
    current: int
    desired: int
    rule: str | None  # the rule that decided; None: no rule moved it (or limits did)
    formula: str
    note: str  # what the limits or the cool-down changed
    inputs: dict
    recommendations: tuple[Recommendation, ...] = field(default=())

    @property
    def change(self) -> int:
        return self.desired - self.current

    def explain(self) -> str:
        i = self.inputs
        head = (f"{self.service}: {self.current} -> {self.desired}" if self.change else f"{self.service}: stays at {self.current}")
        why = f" by {self.rule}: {self.formula}" if self.rule else ""
        seen = f" (CPU {i['cpu_pct']:.1f}%, {i['qps']:,.0f} qps, {i['running']} serving, {i['starting']} starting)"
        return head + why + seen + (f"; {self.note}" if self.note else "")

    def as_json(self) -> dict:
        return {"t": self.t, "service": self.service, "pool": self.pool, "current": self.current,
                "desired": self.desired, "rule": self.rule, "formula": self.formula, "note": self.note,
                "inputs": self.inputs, "recommendations": [r.__dict__ for r in self.recommendations]}


def evaluate(svc: Service, rules: Iterable[AutoscaleRule], limits: PoolLimits, obs: Observation, mem: Memory,
             tz: timezone, history: History | None = None) -> Decision:
    """The decision for `svc` now; `mem` is updated (recommendations, bases, the change made)."""
    recs = []
    for rule in rules:
        if rule.enabled and svc.name in rule.services:
            r = recommend(svc, rule, limits, obs, mem, tz, history)
            if r is not None:
                recs.append(r)
    total = obs.total
    best = max(recs, key=lambda r: r.count, default=None)
    wanted = best.count if best else total
    desired, notes = min(max(wanted, limits.min), limits.max), []
    if desired != wanted:
        notes.append(f"kept within {limits.pool}'s limits [{limits.min}, {limits.max}]")
    since = obs.t - mem.last_change_t if mem.last_change_t is not None else math.inf
    if desired < total and since < limits.cooldown_min * 60 and wanted >= limits.min:
        notes.append(f"scale-down waits: {limits.pool}'s cool-down of {limits.cooldown_min} min "
                     f"({since / 60:.0f} min since the last change)")
        desired = total
    mem.changed(obs.t, total, desired)
    mem.forget(obs.t, max((r.hold_min * 60 + r.lead_min * 60 for r in rules), default=0))
    inputs = {"running": obs.running, "starting": obs.starting, "cpu_pct": round(obs.cpu_pct, 2),
              "qps": round(obs.qps, 1)}
    deciding = best if best is not None and best.count != total else None
    return Decision(obs.t, svc.name, svc.pool, total, desired, deciding.rule if deciding else None,
                    deciding.formula if deciding else "", "; ".join(notes), inputs, tuple(recs))


def recommend(svc: Service, rule: AutoscaleRule, limits: PoolLimits, obs: Observation, mem: Memory,
              tz: timezone, history: History | None) -> Recommendation | None:
    """What one rule asks for now, or None when it has no opinion."""
    if rule.kind == "cpu":
        return _threshold(rule, limits, obs, mem)
    if rule.kind == "target":
        return _target(rule, obs, mem)
    if rule.kind == "schedule":
        return _schedule(rule, obs, mem, tz)
    if rule.kind == "event":
        return _event(rule, obs, mem)
    return _predict(svc, rule, obs, history)


def _threshold(rule: AutoscaleRule, limits: PoolLimits, obs: Observation, mem: Memory) -> Recommendation | None:
    fired = mem.fired.get(rule.name)
    if fired is not None and obs.t - fired < limits.cooldown_min * 60:
        # It multiplied recently: what it asked for may still be starting. Hold, not again.
        return Recommendation(rule.name, rule.kind, obs.total, f"fired {(obs.t - fired) / 60:.0f} min ago: holds")
    if obs.cpu_pct <= rule.threshold_pct:
        return None
    n = math.ceil(obs.total * rule.factor)
    mem.fired[rule.name] = obs.t
    return Recommendation(rule.name, rule.kind, n, f"CPU {obs.cpu_pct:.1f}% > {rule.threshold_pct:g}%: "
                                                   f"ceil({obs.total} x {rule.factor:g}) = {n}")


def _target(rule: AutoscaleRule, obs: Observation, mem: Memory) -> Recommendation:
    raw, formula = hpa.raw_recommendation(obs.running, obs.total, obs.cpu_pct, rule.target_pct, rule.tolerance)
    stable = hpa.stabilise(mem, obs.t, raw, obs.total, rule.up_window_s, rule.down_window_s)
    n = hpa.rate_limited(mem, obs.t, stable, obs.total, rule)
    if stable != raw:
        formula += f"; stabilised to {stable} (highest in {rule.down_window_s} s)" if stable > raw else \
            f"; stabilised to {stable}"
    if n != stable:
        formula += f"; rate-limited to {n}"
    return Recommendation(rule.name, rule.kind, n, formula)


def windows(rule: AutoscaleRule, t: float, tz: timezone) -> list[tuple[str, float, float]]:
    """The schedule's windows that contain `t`: (key, start, end), start = `at` - lead."""
    lead, hold = rule.lead_min * 60, rule.hold_min * 60
    today = datetime.fromtimestamp(t, tz).date()
    out = []
    for back in range(-1, (lead + hold) // 86400 + 2):
        day = today - timedelta(days=back)
        if day.weekday() not in WEEKDAYS[rule.days]:
            continue
        for hhmm in rule.at:
            h, m = map(int, hhmm.split(":"))
            at = datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp()
            if at - lead <= t < at + hold:
                out.append((f"{rule.name}@{day.isoformat()}T{hhmm}", at - lead, at + hold))
    return out


def window_starts(rule: AutoscaleRule, t0: float, t1: float, tz: timezone) -> list[float]:
    """When the schedule's windows open (`at` - lead) within (t0, t1]: where the engine arms a
    one-off job so the window is evaluated at its first moment, not up to an interval later."""
    out = []
    day = datetime.fromtimestamp(t0, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(t1, tz).date() + timedelta(days=1)
    while day <= last:
        if day.weekday() in WEEKDAYS[rule.days]:
            for hhmm in rule.at:
                h, m = map(int, hhmm.split(":"))
                start = datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp() - rule.lead_min * 60
                if t0 < start <= t1:
                    out.append(start)
        day += timedelta(days=1)
    return sorted(out)


def _schedule(rule: AutoscaleRule, obs: Observation, mem: Memory, tz: timezone) -> Recommendation | None:
    best = None
    for key, start, end in windows(rule, obs.t, tz):
        base = mem.bases.setdefault(key, (start, obs.total))[1]
        parts, n = [], 0
        if rule.min_count is not None:
            n, parts = rule.min_count, [f"at least {rule.min_count}"]
        if rule.factor is not None:
            k = math.ceil(base * rule.factor)
            n = max(n, k)
            parts.append(f"ceil({base} x {rule.factor:g}) = {k}")
        until = datetime.fromtimestamp(end, tz).strftime("%H:%M")
        r = Recommendation(rule.name, rule.kind, n, f"{key.split('@')[1][-5:]} window until {until}: " + ", ".join(parts))
        if best is None or r.count > best.count:
            best = r
    return best


def _event(rule: AutoscaleRule, obs: Observation, mem: Memory) -> Recommendation | None:
    for name, start in obs.hot:
        mem.bases.setdefault(f"{rule.name}!{name}", (start, obs.total))
    best = None
    for key, (start, base) in mem.bases.items():
        if key.startswith(f"{rule.name}!") and obs.t - start < rule.hold_min * 60:
            n = math.ceil(base * rule.factor)
            r = Recommendation(rule.name, rule.kind, n, f"hot event {key.split('!', 1)[1]}: ceil({base} x {rule.factor:g}) "
                                                        f"= {n} for {rule.hold_min} min")
            if best is None or n > best.count:
                best = r
    return best


TREND_S = 600  # the trend is the last 10 minutes, carried on for at most as long


def _predict(svc: Service, rule: AutoscaleRule, obs: Observation, history: History | None) -> Recommendation | None:
    """The highest QPS expected within the horizon: now, times how yesterday and last week moved
    from this time on (their mean), or the last 10 minutes' trend carried on for up to 10 more,
    whichever is higher; then the containers that keep CPU at the target. Within the rule's
    tolerance of the current count it asks for no change (no churn on noise)."""
    if history is None or obs.qps <= 0:
        return None
    past = history(svc.name, obs.t - TREND_S)
    slope = (obs.qps - past) / TREND_S if past is not None else 0.0
    peak, how = obs.qps, "now"
    for h in range(5, rule.horizon_min + 1, 5):
        ratios = []
        for back in (86400, 7 * 86400):
            a, b = history(svc.name, obs.t - back), history(svc.name, obs.t + h * 60 - back)
            if a and b is not None:
                ratios.append(b / a)
        seasonal = obs.qps * sum(ratios) / len(ratios) if ratios else 0.0
        trend = obs.qps + slope * min(h * 60, TREND_S)
        q, kind = (seasonal, "as yesterday and last week") if seasonal >= trend else (trend, "on the trend")
        if q > peak:
            peak, how = q, f"{kind}, in {h} min"
    n = math.ceil(round(peak * svc.traffic.cores_per_kqps / 1000 / (svc.cpu * rule.target_pct / 100), 9))
    formula = (f"expects {peak:,.0f} qps ({how}): ceil({peak:,.0f} x {svc.traffic.cores_per_kqps:g}/1000 / "
               f"({svc.cpu:g} x {rule.target_pct:g}%)) = {n}")
    if obs.total and abs(n / obs.total - 1.0) <= rule.tolerance:
        return Recommendation(rule.name, rule.kind, obs.total, formula + f": within ±{rule.tolerance:g} of {obs.total}")
    return Recommendation(rule.name, rule.kind, n, formula)
