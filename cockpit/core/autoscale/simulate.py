"""A day replayed through the same decision code the engine runs (decide.evaluate), much faster
than real time, against two baselines:

- `rules`: the world's autoscaling rules, within its pool limits;
- `hpa`: one target rule per service at its pool's target CPU, with Kubernetes' defaults;
- `static-peak`: every service sized all day for the highest traffic of the day before, at its
  pool's target CPU (capacity bought in advance: nothing scales).

Each step: capacity that was due arrives; each service's CPU is its traffic's cores over its
serving containers' reservation (capped at 100%); the rules are evaluated every `interval_s`;
what they decide is asked of the capacity model (capacity.py). Measured: SLO-violation minutes
(a pool-minute whose CPU is more than 10 points over its target), container-hours (serving and
starting), the cost of the ECS hosts held, scale actions, and the longest wait for capacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cockpit.core.autoscale.capacity import Capacity
from cockpit.core.autoscale.decide import Decision, Observation, evaluate
from cockpit.core.autoscale.memory import Memory
from cockpit.core.autoscale.rules import POLICIES
from cockpit.core.autoscale.trace import Trace
from cockpit.domain import AutoscaleRule, World

SLO_MARGIN_PCT = 10.0


@dataclass
class DayResult:
    policy: str
    violation_minutes: int
    container_hours: float
    cost: float
    actions: int
    longest_wait_s: float
    unplaced: int
    decisions: list[Decision] = field(default_factory=list)  # the changes, in order
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # service -> qps, serving, total, cpu_pct

    def summary(self) -> dict:
        return {"policy": self.policy, "violation_minutes": self.violation_minutes,
                "container_hours": round(self.container_hours, 1), "cost": round(self.cost, 2),
                "actions": self.actions, "longest_wait_s": round(self.longest_wait_s, 1), "unplaced": self.unplaced}


def policy_rules(world: World, policy: str) -> tuple[AutoscaleRule, ...]:
    """The rules a policy runs: the world's, or an HPA per service the world's rules cover."""
    if policy == "rules":
        return tuple(r for r in world.autoscaling if r.enabled)
    covered = sorted({s for r in world.autoscaling for s in r.services})
    if policy == "hpa":
        svc = {s.name: s for s in world.services}
        return tuple(AutoscaleRule(f"hpa-{name}", "target", (name,),
                                   target_pct=world.scaling.limits(svc[name].pool).target_cpu_pct) for name in covered)
    return ()


def static_counts(world: World, trace: Trace) -> dict[str, int]:
    """static-peak: each covered service sized for yesterday's highest traffic at its pool's target."""
    covered = {s for r in world.autoscaling for s in r.services}
    steps = trace.steps
    out = {}
    for i, s in enumerate(world.services):
        if s.name in covered:
            peak = float(trace.past[i, -steps:].max())
            target = world.scaling.limits(s.pool).target_cpu_pct
            out[s.name] = math.ceil(round(peak * s.traffic.cores_per_kqps / 1000 / (s.cpu * target / 100), 9))
    return out


Decider = Callable[[float, dict[str, Observation], Callable], list[Decision]]


def simulate(world: World, trace: Trace, policy: str, decider: Decider | None = None) -> DayResult:
    """The day under `policy`. `decider(t, observations, history)` makes each evaluation's
    decisions; by default the rules' own code with memory kept here (the engine passes its
    autoscaler, which keeps rules and memory in the store, to show it decides the same)."""
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    services = list(world.services)
    index = {name: i for i, name in enumerate(trace.services)}
    counts = {s.name: sum(s.containers.values()) for s in services}
    if policy == "static-peak":
        counts.update(static_counts(world, trace))
    cap = Capacity(world, world.scaling.lead_times, counts)
    rules = policy_rules(world, policy)
    decide = decider or _in_memory(world, rules)
    interval = max(world.scaling.interval_s, trace.step_s)
    res = DayResult(policy, 0, 0.0, 0.0, 0, 0.0, 0)
    shape = (len(services), trace.steps)
    serving, total, cpu = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    next_eval = trace.start
    for k in range(trace.steps):
        t = trace.start + k * trace.step_s
        cap.arrive(t)
        obs = {}
        for i, s in enumerate(services):
            h = cap.holding[s.name]
            q = float(trace.qps[index[s.name], k])
            used = q * s.traffic.cores_per_kqps / 1000
            pct = 100.0 * min(used / (h.serving * s.cpu), 1.0) if h.serving and s.cpu else (100.0 if used else 0.0)
            obs[s.name] = Observation(t, h.serving, h.starting, pct, q, trace.hot_at(s.name, t))
            serving[i, k], total[i, k], cpu[i, k] = h.serving, h.serving + h.starting, pct
        if rules and t >= next_eval:
            next_eval = t + interval
            _apply(decide(t, obs, lambda name, when, now=t: trace.at(index[name], when, now)), cap, res)
        res.cost += cap.cost_per_hour() * trace.step_s / 3600
    res.container_hours = float(total.sum()) * trace.step_s / 3600
    covered = {s for r in (world.autoscaling or rules) for s in r.services}
    res.violation_minutes = _violations(world, services, trace, serving, cpu, covered)
    res.series = {s.name: {"qps": trace.qps[index[s.name]], "serving": serving[i], "total": total[i], "cpu_pct": cpu[i]}
                  for i, s in enumerate(services)}
    return res


def _in_memory(world: World, rules: tuple[AutoscaleRule, ...]) -> Decider:
    memory = {s.name: Memory() for s in world.services}

    def decide(t: float, obs: dict[str, Observation], history) -> list[Decision]:
        out = []
        for s in world.services:
            mine = [r for r in rules if s.name in r.services]
            if mine:
                out.append(evaluate(s, mine, world.scaling.limits(s.pool), obs[s.name], memory[s.name],
                                    world.traffic.tz, history))
        return out
    return decide


def _apply(decisions: list[Decision], cap: Capacity, res: DayResult) -> None:
    for d in decisions:
        if d.change > 0:
            wait, nowhere = cap.add(d.service, d.change, d.t)
            res.longest_wait_s = max(res.longest_wait_s, wait)
            res.unplaced += nowhere
        elif d.change < 0:
            cap.remove(d.service, -d.change)
        if d.change:
            res.actions += 1
            res.decisions.append(d)


def _violations(world: World, services, trace: Trace, serving: np.ndarray, cpu: np.ndarray, covered: set[str]) -> int:
    """Pool-minutes whose CPU (used of reserved, over the pool's serving containers) is more than
    SLO_MARGIN_PCT points over the pool's target, in the pools of the services the world's rules
    scale (the others are run the same under every policy)."""
    minutes = trace.step_s / 60
    out = 0.0
    for pool in sorted({s.pool for s in services if s.name in covered}):
        rows = [i for i, s in enumerate(services) if s.pool == pool]
        reserved = sum(serving[i] * services[i].cpu for i in rows)
        used = sum(cpu[i] / 100 * serving[i] * services[i].cpu for i in rows)
        pct = np.divide(used, reserved, out=np.zeros_like(used), where=reserved > 0) * 100
        pct = np.where(reserved > 0, pct, np.max([cpu[i] for i in rows], axis=0))  # traffic with no one serving it
        over = pct > world.scaling.limits(pool).target_cpu_pct + SLO_MARGIN_PCT
        out += float(over.sum()) * minutes
    return int(round(out))
