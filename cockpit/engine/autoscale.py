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

    def observe(self, t: float, hot: list, measured: dict[str, float] | None = None) -> dict[str, Observation]:
        """Every service as the rules see it now (the platform's traffic model, its containers);
        `measured`: CPU per service from real engines, which then replaces the model's."""
        services = list(self.world.services)
        qps = service_qps(self.world.traffic, services, float(t), self.world.seed, [e for _, e in hot])
        now = counts()
        out = {}
        for s, q in zip(services, np.atleast_1d(qps)):
            serving, starting = now.get(s.name, (0, 0))
            running_hot = tuple((e.name, e.start.timestamp()) for e in list(self.world.traffic.hot_events) + [e for _, e in hot]
                                if s.name in e.services and e.start.timestamp() <= t < e.start.timestamp() + e.duration_min * 60)
            cpu = (measured or {}).get(s.name)
            out[s.name] = Observation(t, serving, starting, cpu_pct(s, float(q), serving) if cpu is None else cpu,
                                      float(q), running_hot)
        return out

    def step(self, t: float, observations: dict[str, Observation], hist: Callable | None = None) -> Evaluation:
        """One evaluation of every service some rule covers."""
        rules = active_rules()
        busy = self._waiting()
        mems = {r.service: Memory.from_json(r.memory) for r in ScaleMemoryRow.select()}
        hist = hist or history(self.world.scaling.interval_s)
        covered = {name for r in rules for name in r.services}
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
        plans = self._plans([d for d in decisions if d.change], covered) if self.act else {}
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

    def _plans(self, changes: list[Decision], covered: set[str]) -> dict[str, Plan]:
        """What to ask of the platform for each decision, read and planned outside the transaction
        (the platform read once for all of them)."""
        out = {d.service: Plan("scale_in", {"service": d.service, "count": -d.change, "idc": None}, -d.change)
               for d in changes if d.change < 0}
        ups = [d for d in changes if d.change > 0]
        if ups:
            from cockpit.engine.state import catalog, current_table

            table, services, _ = current_table()
            cat = catalog(self.world, services)
            out.update({d.service: self._plan_up(d, covered, table, cat) for d in ups})
        return out

    def _plan_up(self, d: Decision, covered: set[str], table, cat) -> Plan:
        from cockpit.core.whatif import WhatIf, preview
        from cockpit.engine.scale import scale_parts

        p = preview(table, cat, WhatIf(d.service, None, d.change))
        # What the templates pull in, except services the rules scale themselves in this pass:
        # their own rules see their own load (counting both would scale them twice).
        keep = [(part, sp) for part, sp in zip(scale_parts(p), p.parts)
                if part["service"] == d.service or part["service"] not in covered]
        parts = [part for part, sp in keep if sp.plan.placed]
        need = p.root.need
        return Plan("scale", {"request": f"autoscale {d.service} +{d.change}", "autoscale": d.service, "parts": parts},
                    p.root.plan.placed, need.shared_hosts if need else 0, need.ecs_hosts if need else 0, p.root.sid)

    def _record(self, t, observations, decisions, mems, plans) -> None:
        by_service = {d.service: d for d in decisions}
        outcomes = {}
        for d in decisions:
            if d.change:
                plan = plans.get(d.service)
                outcomes[d.service] = self._carry_out(t, d, plan) if plan else (None, "recorded (a what-if)")
                if plan and plan.count != abs(d.change):  # the memory holds what was asked of the platform
                    mems[d.service].revise(t, d.current, d.desired, d.current + plan.count * (1 if d.change > 0 else -1))
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
            task, outcome = outcomes[d.service]
            ScaleDecisionRow.insert(t=t, service=d.service, pool=d.pool, current=d.current, desired=d.desired,
                                    rule=d.rule, formula=d.formula, note=d.note, inputs=d.inputs, task=task,
                                    outcome=outcome).execute()
            journal.event(t, "info" if task else "warn", "autoscale", d.service, f"{d.explain()} -> {outcome}")
            if d.service in plans:  # carried out, not a what-if: the engine's own change, audited
                journal.engine_audit(action="autoscale", target=d.service, outcome="queued" if task else "decided",
                                     details={"decision": d.explain(), "did": outcome, "task": task}, platform_t=t)

    def _carry_out(self, t: float, d: Decision, plan: Plan) -> tuple[int | None, str]:
        """Queue what the plan asks for; (the task, what was done, in words)."""
        said, task = [], None
        if plan.count:
            task = TaskRow.insert(kind=plan.kind, state="queued", spec=plan.spec, actor=ACTOR, created_t=t,
                                  updated_t=t, real_created=time.time()).execute()
            sign = "+" if plan.kind == "scale" else "-"
            said.append(f"task {task}: {d.service} {sign}{plan.count}")
        if plan.kind == "scale" and plan.count < d.change:
            said.append(f"{d.change - plan.count} have no host with room")
            said += self._more_hosts(t, d, plan)
        return task, "; ".join(said)

    def _more_hosts(self, t: float, d: Decision, plan: Plan) -> list[str]:
        """Borrow from the shared pool, then order ECS hosts: what is lacking, less what is already
        on its way to this pool (an open borrowing, open orders, hosts still initialising)."""
        said = []
        shared = self.world.shared_pool.name
        if plan.shared_hosts:
            open_moves = [(tid, spec) for tid, spec in TaskRow.select(TaskRow.id, TaskRow.spec).where(
                (TaskRow.kind == "pool_move") & (TaskRow.actor == ACTOR) & TaskRow.state.in_(OPEN)).tuples()]
            mine = [tid for tid, spec in open_moves if spec.get("to_pool") == d.pool]
            # the shared pool's hosts in service, less those other borrowings already asked for
            free = HostRow.select().where((HostRow.pool == shared) & (HostRow.status == "ready") & HostRow.alive
                                          & HostRow.released_t.is_null()).count() - \
                sum(int(spec.get("count") or 0) for _, spec in open_moves)
            n = min(plan.shared_hosts, free)
            if mine:
                said.append(f"shared hosts on their way (task {mine[0]})")
            elif n > 0:
                tid = TaskRow.insert(kind="pool_move", state="queued", actor=ACTOR, created_t=t, updated_t=t,
                                     real_created=time.time(),
                                     spec={"from_pool": shared, "idc": None, "count": n,
                                           "to_pool": d.pool, "reason": f"autoscale {d.service}"}).execute()
                said.append(f"borrowing {n} shared hosts (task {tid})")
        if plan.ecs_hosts:
            tpl = next((x for x in self.world.templates if x.sid == plan.template and x.ecs is not None), None)
            if tpl is None:
                return said + ["no ECS template for the rest"]
            orders = list(EcsOrderRow.select().where((EcsOrderRow.pool == d.pool)
                                                     & EcsOrderRow.state.in_(("queued", "running", "paused"))))
            arriving = sum(o.count - o.created for o in orders) + HostRow.select().where(
                (HostRow.pool == d.pool) & HostRow.status.in_(("pending", "initialising"))
                & HostRow.released_t.is_null()).count()
            more = min(plan.ecs_hosts - arriving, 10_000)
            if arriving:
                said.append(f"{arriving} hosts on their way" + (f" (order {orders[0].id})" if orders else ""))
            if more > 0:
                from cockpit.engine.orders import place_order

                oid = place_order(self.world, tpl, more, d.pool, ACTOR, t)
                said.append(f"ordering {more} ECS hosts (order {oid})")
        return said


@dataclass(frozen=True)
class Plan:
    kind: str  # scale | scale_in
    spec: dict
    count: int  # containers the task starts or stops for the decided service
    shared_hosts: int = 0
    ecs_hosts: int = 0
    template: int | None = None
