"""The engine's autoscaler: every `scaling.interval_s` of platform time, the rules in the store
(edited live in `:scale`) are evaluated for each service by the same code `cockpit simulate`
runs (core.autoscale.decide), and each decision is explained in the events and carried out:

- up: a preview of the extra containers and what the service's templates pull in (feed +10
  brings user +4 and card +3), queued as a scale task with its placements; what no host has room
  for borrows hosts from the shared pool, then orders ECS hosts of the service's template, once
  per pool until those arrive (the next evaluations place on them);
- down: a scale-in task (containers stop where the service is most crowded first).

A service whose last autoscale task has not started yet is not evaluated again, so nothing is
asked twice. The observation, memory, decision, events and tasks of an evaluation are written in
one fenced transaction; the evaluation reads (and plans) before it, outside.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import peewee as pw

from cockpit.core.autoscale.decide import Decision, Observation, evaluate
from cockpit.core.autoscale.memory import Memory
from cockpit.core.traffic import service_qps
from cockpit.domain import AutoscaleRule, Service, World
from cockpit.engine import journal
from cockpit.store.db import get_meta, set_meta
from cockpit.store.models import (ContainerRow, EcsOrderRow, HostRow, ScaleDecisionRow, ScaleMemoryRow, ScaleRuleRow,
                                  ServiceMetricRow, TaskRow)

log = logging.getLogger(__name__)
ACTOR = "autoscaler"
OPEN = ("queued", "running")


def load_rules() -> list[tuple[AutoscaleRule, bool]]:
    """The rules in the store, in order, each with whether it is paused."""
    from cockpit.world_build import autoscale_rule

    return [(autoscale_rule(r.spec), r.paused) for r in ScaleRuleRow.select().order_by(ScaleRuleRow.position,
                                                                                        ScaleRuleRow.name)]


def active_rules() -> list[AutoscaleRule]:
    return [r for r, paused in load_rules() if not paused and r.enabled]


def counts() -> dict[str, tuple[int, int]]:
    """service -> (serving, starting): running containers on hosts that are up, and those starting."""
    out: dict[str, list[int]] = {}
    q = (ContainerRow.select(ContainerRow.service, ContainerRow.state, HostRow.alive, pw.fn.COUNT(ContainerRow.id))
         .join(HostRow, on=(ContainerRow.host == HostRow.id))
         .group_by(ContainerRow.service, ContainerRow.state, HostRow.alive).tuples())
    for service, state, alive, n in q:
        c = out.setdefault(service, [0, 0])
        if state == "starting":
            c[1] += n
        elif state == "running" and alive:
            c[0] += n
    return {k: (v[0], v[1]) for k, v in out.items()}


def cpu_pct(svc: Service, qps: float, serving: int) -> float:
    """CPU used of reserved over the serving containers, capped at 100% (as telemetry reports it)."""
    used = qps * svc.traffic.cores_per_kqps / 1000
    if not serving or not svc.cpu:
        return 100.0 if used else 0.0
    return 100.0 * min(used / (serving * svc.cpu), 1.0)


def history(interval_s: float) -> Callable[[str, float], float | None]:
    """A service's QPS at a past time from the recorded evaluations (the nearest within half an
    interval), for the `predict` rules."""
    def at(service: str, t: float) -> float | None:
        row = (ServiceMetricRow.select(ServiceMetricRow.qps)
               .where((ServiceMetricRow.service == service) & (ServiceMetricRow.t.between(t - interval_s / 2, t + interval_s / 2)))
               .order_by(ServiceMetricRow.t).first())
        return row.qps if row is not None else None
    return at


@dataclass
class Evaluation:
    decisions: list[Decision]
    skipped: list[str]  # services waiting for their last task


class Autoscaler:
    def __init__(self, world: World, fence: Callable[[], AbstractContextManager], *, act: bool = True):
        self.world = world
        self.fence = fence
        self.act = act  # False: decide and record only (a what-if, a test)

    def due(self, t: float) -> bool:
        last = get_meta("autoscale_last_t")
        return last is None or t - float(last) >= self.world.scaling.interval_s

    def observe(self, t: float, hot: list) -> dict[str, Observation]:
        """Every service as the rules see it now (the platform's traffic model, its containers)."""
        services = list(self.world.services)
        qps = service_qps(self.world.traffic, services, float(t), self.world.seed, [e for _, e in hot])
        now = counts()
        out = {}
        for s, q in zip(services, np.atleast_1d(qps)):
            serving, starting = now.get(s.name, (0, 0))
            running_hot = tuple((e.name, e.start.timestamp()) for e in list(self.world.traffic.hot_events) + [e for _, e in hot]
                                if s.name in e.services and e.start.timestamp() <= t < e.start.timestamp() + e.duration_min * 60)
            out[s.name] = Observation(t, serving, starting, cpu_pct(s, float(q), serving), float(q), running_hot)
        return out

    def step(self, t: float, observations: dict[str, Observation], hist: Callable | None = None) -> Evaluation:
        """One evaluation of every service some rule covers."""
        rules = active_rules()
        busy = self._waiting()
        mems = {r.service: Memory.from_json(r.memory) for r in ScaleMemoryRow.select()}
        hist = hist or history(self.world.scaling.interval_s)
        decisions, skipped = [], []
        for s in self.world.services:
            mine = [r for r in rules if s.name in r.services]
            if not mine or s.name not in observations:
                continue
            if s.name in busy:
                skipped.append(s.name)
                continue
            mem = mems.setdefault(s.name, Memory())
            decisions.append(evaluate(s, mine, self.world.scaling.limits(s.pool), observations[s.name], mem,
                                      self.world.traffic.tz, hist))
        plans = {d.service: self._plan(d) for d in decisions if d.change and self.act}
        with self.fence():
            self._record(t, observations, decisions, mems, plans)
            set_meta("autoscale_last_t", repr(t))
        return Evaluation(decisions, skipped)

    def _waiting(self) -> set[str]:
        """Services whose last autoscale task has not been taken up yet."""
        out = set()
        for spec, kind in TaskRow.select(TaskRow.spec, TaskRow.kind).where(
                (TaskRow.actor == ACTOR) & (TaskRow.state == "queued")).tuples():
            out.add(spec.get("service") if kind == "scale_in" else spec.get("autoscale", ""))
        return out

    def _plan(self, d: Decision) -> dict:
        """What to ask of the platform for a decision: the task's spec, and hosts to borrow or order."""
        if d.change < 0:
            return {"kind": "scale_in", "spec": {"service": d.service, "count": -d.change, "idc": None}}
        from cockpit.core.whatif import WhatIf, preview
        from cockpit.engine.scale import scale_parts
        from cockpit.engine.state import catalog, current_table

        table, services, _ = current_table()
        p = preview(table, catalog(self.world, services), WhatIf(d.service, None, d.change))
        need = p.root.need
        return {"kind": "scale", "spec": {"request": f"autoscale {d.service} +{d.change}", "autoscale": d.service,
                                          "parts": scale_parts(p)},
                "placed": {sp.service: sp.plan.placed for sp in p.parts},
                "shared_hosts": need.shared_hosts if need else 0, "ecs_hosts": need.ecs_hosts if need else 0,
                "template": p.root.sid}

    def _record(self, t, observations, decisions, mems, plans) -> None:
        by_service = {d.service: d for d in decisions}
        for name, o in observations.items():
            d = by_service.get(name)
            ServiceMetricRow.insert(service=name, t=t, qps=o.qps, cpu_pct=o.cpu_pct, running=o.running,
                                    starting=o.starting, desired=d.desired if d else o.total).on_conflict(
                conflict_target=[ServiceMetricRow.service, ServiceMetricRow.t],
                update={ServiceMetricRow.qps: o.qps}).execute()
        for name, mem in mems.items():
            ScaleMemoryRow.insert(service=name, memory=mem.as_json()).on_conflict(
                conflict_target=[ScaleMemoryRow.service], update={ScaleMemoryRow.memory: mem.as_json()}).execute()
        for d in decisions:
            if not d.change:
                continue
            task, outcome = self._carry_out(t, d, plans.get(d.service)) if self.act else (None, "recorded (what-if)")
            ScaleDecisionRow.insert(t=t, service=d.service, pool=d.pool, current=d.current, desired=d.desired,
                                    rule=d.rule, formula=d.formula, note=d.note, inputs=d.inputs, task=task,
                                    outcome=outcome).execute()
            journal.event(t, "info", "autoscale", d.service, d.explain() + (f" -> {outcome}" if outcome else ""))

    def _carry_out(self, t: float, d: Decision, plan: dict | None) -> tuple[int | None, str]:
        if plan is None:
            return None, ""
        if plan["kind"] == "scale" and not any(plan["placed"].values()) and not plan["shared_hosts"] and not plan["ecs_hosts"]:
            return None, "no host can take them, and no shared or ECS host either"
        said = []
        task = None
        if plan["kind"] == "scale_in" or any(plan["placed"].values()):
            task = TaskRow.insert(kind=plan["kind"], state="queued", spec=plan["spec"], actor=ACTOR, created_t=t,
                                  updated_t=t, real_created=time.time()).execute()
            said.append(f"task {task}")
        if plan["kind"] == "scale":
            said += self._more_hosts(t, d, plan)
        return task, ", ".join(said)

    def _more_hosts(self, t: float, d: Decision, plan: dict) -> list[str]:
        """Borrow from the shared pool, then order ECS hosts, unless such a request for this pool
        is still on its way."""
        said = []
        shared = self.world.shared_pool.name
        if plan["shared_hosts"] and not TaskRow.select().where(
                (TaskRow.kind == "pool_move") & (TaskRow.actor == ACTOR) & TaskRow.state.in_(OPEN)).exists():
            tid = TaskRow.insert(kind="pool_move", state="queued", actor=ACTOR, created_t=t, updated_t=t,
                                 real_created=time.time(),
                                 spec={"from_pool": shared, "idc": None, "count": plan["shared_hosts"],
                                       "to_pool": d.pool, "reason": f"autoscale {d.service}"}).execute()
            said.append(f"borrow {plan['shared_hosts']} shared hosts (task {tid})")
        if plan["ecs_hosts"] and plan["template"] is not None and not EcsOrderRow.select().where(
                (EcsOrderRow.pool == d.pool) & (EcsOrderRow.actor == ACTOR)
                & EcsOrderRow.state.in_(("queued", "running", "paused"))).exists():
            from cockpit.engine.orders import place_order

            tpl = next(x for x in self.world.templates if x.sid == plan["template"])
            if tpl.ecs is not None:
                oid = place_order(self.world, tpl, min(plan["ecs_hosts"], 10_000), d.pool, ACTOR, t)
                said.append(f"order {plan['ecs_hosts']} ECS hosts (order {oid})")
        return said
