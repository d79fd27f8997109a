"""What `:tasks`, `:services` and `cockpit flow` read and ask for about expansion flows: each flow
with its steps and progress, each host and container of it with its state and log; starting,
pausing, resuming and stopping a flow (confirmed, audited, read-only respected); each service's
containers per IDC and host with what discovery holds for it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import peewee as pw

from cockpit.core.flow import OPEN, TITLES, FlowSpec, steps_of
from cockpit.engine.actions import Outcome
from cockpit.engine.requests import requestable
from cockpit.store.models import ContainerRow, FlowItemRow, HostRow, ServiceRow, TaskRow

MAX_FLOWS = 200


@dataclass(frozen=True)
class StepView:
    name: str
    title: str
    state: str  # waiting | running | done | failed
    note: str
    seconds: float | None


@dataclass(frozen=True)
class FlowView:
    id: int
    kind: str  # expand | shrink
    service: str
    count: int
    idc: str | None
    state: str
    actor: str
    step: str | None
    steps: tuple[StepView, ...]
    items: dict  # state -> count
    reason: str | None
    parent: int | None

    @property
    def done_steps(self) -> int:
        return sum(s.state == "done" for s in self.steps)


@dataclass(frozen=True)
class ItemView:
    id: int
    kind: str
    name: str
    host: str | None
    step: str
    state: str
    attempts: int
    detail: str | None
    log: tuple[tuple[float, str, str], ...]


@dataclass(frozen=True)
class ServiceView:
    name: str
    kind: str
    image: str
    per_idc: dict  # idc -> {"running", "starting", "stopping", "hosts"}
    discovered: int | None  # members or instances in discovery (None: not asked / unreachable)
    discovery_error: str | None
    callers: tuple = ()  # an RPC service: for a caller in each IDC, who answers (core.discovery.View)


def flow_view(t: TaskRow, items: dict[str, int]) -> FlowView:
    p, spec = t.progress or {}, t.spec or {}
    seen = p.get("steps") or {}
    steps = []
    for name in steps_of(t.kind):
        s = seen.get(name)
        state = s["state"] if s else "waiting"
        secs = (s.get("t1") or 0) - s["t0"] if s and s.get("t1") else None
        steps.append(StepView(name, TITLES[name], state, (s or {}).get("note", ""), secs))
    return FlowView(t.id, t.kind, spec.get("service", "?"), int(spec.get("count", 0)), spec.get("idc"), t.state,
                    t.actor, p.get("step"), tuple(steps), items, t.reason, spec.get("parent"))


def _descendants(flow: int) -> list[int]:
    """The flows a flow's dependencies step queued, and theirs, in id order."""
    children: dict[int, list[int]] = {}
    for tid, spec in TaskRow.select(TaskRow.id, TaskRow.spec).where(TaskRow.kind == "expand").tuples():
        parent = (spec or {}).get("parent")
        if parent is not None:
            children.setdefault(parent, []).append(tid)
    out, todo = [], [flow]
    while todo:
        for k in children.get(todo.pop(), []):
            if k not in out:
                out.append(k)
                todo.append(k)
    return sorted(out)


class FlowsFacade:
    def flows(self, limit: int = MAX_FLOWS) -> list[FlowView]:
        """The newest flows first (open ones always)."""
        rows = list(TaskRow.select().where(TaskRow.kind.in_(("expand", "shrink"))).order_by(TaskRow.id.desc())
                    .limit(limit))
        counts: dict[int, Counter] = defaultdict(Counter)
        ids = [r.id for r in rows]
        if ids:
            q = (FlowItemRow.select(FlowItemRow.task, FlowItemRow.state).where(FlowItemRow.task.in_(ids)).tuples())
            for task, state in q:
                counts[task][state] += 1
        return [flow_view(r, dict(counts[r.id])) for r in rows]

    def flow_items(self, flow: int) -> list[ItemView]:
        q = FlowItemRow.select().where(FlowItemRow.task == flow).order_by(FlowItemRow.kind, FlowItemRow.id)
        return [ItemView(i.id, i.kind, i.name, i.host, i.step, i.state, i.attempts, i.detail,
                         tuple(tuple(x) for x in (i.log or []))) for i in q]

    @requestable
    def start_flow(self, kind: str, service: str, count: int, idc: str | None = None, *, batch: int = 5,
                   retries: int = 3) -> Outcome:
        """Queue a flow: scale `service` out (expand) or in (shrink) by `count` in `idc` (default:
        the IDC that runs most of it)."""
        from cockpit.engine.flow import FlowError, queue_flow

        if kind not in ("expand", "shrink"):
            return Outcome(False, f"no flow kind {kind!r} (expand or shrink)")
        if ServiceRow.get_or_none(ServiceRow.name == service) is None:
            return Outcome(False, f"no service named {service!r}")
        idc = idc or self._main_idc(service)
        if idc not in {i.name for i in self.world.idcs}:
            return Outcome(False, f"no IDC named {idc!r}")
        try:
            spec = FlowSpec.parse({"service": service, "count": count, "idc": idc, "batch": batch, "retries": retries})
        except ValueError as e:
            return Outcome(False, f"flow: {e}")
        sign = "+" if kind == "expand" else "-"
        target = f"{service} {sign}{count} in {idc}"

        def do() -> tuple[str, int]:
            try:
                flow = queue_flow(kind, spec, self.cfg.user, self.clock().t)
            except FlowError as e:
                raise ValueError(str(e)) from None
            return f"flow {flow} queued: {target}", flow

        return self._act("flow.start", target, spec.as_json() | {"kind": kind}, do)

    def _main_idc(self, service: str) -> str | None:
        row = (ContainerRow.select(ContainerRow.idc).where(ContainerRow.service == service)
               .group_by(ContainerRow.idc).order_by(pw.fn.COUNT(ContainerRow.id).desc(), ContainerRow.idc).first())
        return row.idc if row else next((i.name for i in self.world.idcs), None)

    def _flow_state(self, flow: int, action: str, allowed: tuple[str, ...], to: str, said: str) -> Outcome:
        t = TaskRow.get_or_none((TaskRow.id == flow) & TaskRow.kind.in_(("expand", "shrink")))
        if t is None:
            return Outcome(False, f"no flow {flow}")

        def do() -> str:
            n = TaskRow.update(state=to, reason=f"{said} by {self.cfg.user}" if to == "cancelled" else t.reason).where(
                (TaskRow.id == flow) & TaskRow.state.in_(allowed)).execute()
            if not n:
                raise ValueError(f"flow {flow} is {TaskRow.get_by_id(flow).state}")
            # the dependency flows it queued go with it (an SRE stopping a flow means all of it)
            kids = [k for k in _descendants(flow) if TaskRow.update(
                state=to, reason=f"{said} with flow {flow} by {self.cfg.user}" if to == "cancelled" else None).where(
                (TaskRow.id == k) & TaskRow.state.in_(allowed)).execute()]
            return f"flow {flow} {said}" + (f", with its dependency flows {', '.join(map(str, kids))}" if kids else "")

        return self._act(action, f"flow {flow}", {"flow": flow}, do)

    @requestable
    def pause_flow(self, flow: int) -> Outcome:
        return self._flow_state(flow, "flow.pause", ("queued", "running"), "paused", "paused")

    @requestable
    def resume_flow(self, flow: int) -> Outcome:
        return self._flow_state(flow, "flow.resume", ("paused",), "running", "resumed")

    @requestable
    def stop_flow(self, flow: int) -> Outcome:
        """Nothing more is done; what is done stays, and every host and container keeps its state."""
        return self._flow_state(flow, "flow.stop", OPEN, "cancelled", "stopped")

    def services_view(self) -> list[ServiceView]:
        """Each service with its containers per IDC, and what discovery holds for it."""
        per: dict[str, dict] = defaultdict(lambda: defaultdict(lambda: {"running": 0, "starting": 0, "stopping": 0,
                                                                         "hosts": set()}))
        for svc, idc, state, host in ContainerRow.select(ContainerRow.service, ContainerRow.idc, ContainerRow.state,
                                                         ContainerRow.host).tuples():
            cell = per[svc][idc]
            cell[state] = cell.get(state, 0) + 1
            cell["hosts"].add(host)
        out = []
        for r in ServiceRow.select().order_by(ServiceRow.name):
            found, error, callers = self._discovered(r.name, r.kind)
            idcs = {idc: {**v, "hosts": len(v["hosts"])} for idc, v in sorted(per[r.name].items())}
            out.append(ServiceView(r.name, r.kind, r.image, idcs, found, error, callers))
        return out

    def _discovered(self, service: str, kind: str) -> tuple[int | None, str | None, tuple]:
        """How many members or instances discovery holds, its error, and for an RPC service the
        view of a caller in each IDC (its own IDC's instances, else failover)."""
        d = self.discovery()
        if d is None or kind not in ("http", "rpc"):
            return None, None, ()
        from cockpit.backends.discovery import DiscoveryError
        from cockpit.core.discovery import caller_view

        try:
            if kind == "http":
                return len(d.members(service).members), None, ()
            found = d.instances(service)
        except DiscoveryError as e:
            return None, str(e), ()
        return len(found), None, tuple(caller_view(found, i.name) for i in self.world.idcs)

    def service_containers(self, service: str) -> list[tuple[str, str, str, str | None, list]]:
        """(container, IDC, host, state, address:port list) of one service."""
        names = dict(HostRow.select(HostRow.id, HostRow.name).tuples())
        q = (ContainerRow.select(ContainerRow.name, ContainerRow.idc, ContainerRow.host, ContainerRow.state,
                                 ContainerRow.address, ContainerRow.ports)
             .where(ContainerRow.service == service).order_by(ContainerRow.idc, ContainerRow.host))
        return [(n, idc, names.get(h, "?"), st, [f"{a}:{p[1]}" for p in ports] if a else [])
                for n, idc, h, st, a, ports in q.tuples()]

    # --- read helpers for the views and the CLI (:tasks, :services, `cockpit flow`) ---------------

    def flow(self, flow_id: int) -> FlowView | None:
        """One flow, however old (flows() holds the newest MAX_FLOWS)."""
        t = TaskRow.get_or_none((TaskRow.id == flow_id) & TaskRow.kind.in_(("expand", "shrink")))
        if t is None:
            return None
        q = FlowItemRow.select(FlowItemRow.state).where(FlowItemRow.task == flow_id)
        counts = Counter(s for (s,) in q.tuples())
        return flow_view(t, dict(counts))

    def flow_times(self, ids: list[int]) -> dict[int, tuple[float, float]]:
        """(created, last changed) of these flows, in platform time."""
        if not ids:
            return {}
        q = TaskRow.select(TaskRow.id, TaskRow.created_t, TaskRow.updated_t).where(TaskRow.id.in_(ids))
        return {i: (c, u) for i, c, u in q.tuples()}

    def flow_ask(self, kind: str, service: str, count: int, idc: str | None = None, *, batch: int = 5,
                 retries: int = 3) -> FlowAsk:
        """What starting this flow would do, in words to confirm, or why it cannot start (the checks
        start_flow makes, and for a shrink that the IDC runs that many), before anything is asked."""
        if kind not in ("expand", "shrink"):
            return FlowAsk(kind, service, count, idc, f"no flow kind {kind!r} (expand or shrink)")
        if ServiceRow.get_or_none(ServiceRow.name == service) is None:
            return FlowAsk(kind, service, count, idc, f"no service named {service!r}")
        idc = idc or self._main_idc(service)
        if idc not in {i.name for i in self.world.idcs}:
            names = ", ".join(i.name for i in self.world.idcs)
            return FlowAsk(kind, service, count, idc, f"no IDC named {idc!r} ({names})")
        try:
            spec = FlowSpec.parse({"service": service, "count": count, "idc": idc, "batch": batch, "retries": retries})
        except ValueError as e:
            return FlowAsk(kind, service, count, idc, f"flow: {e}")
        here = dict(ContainerRow.select(ContainerRow.state, pw.fn.COUNT(ContainerRow.id)).where(
            (ContainerRow.service == service) & (ContainerRow.idc == idc)).group_by(ContainerRow.state).tuples())
        running = here.get("running", 0)
        if kind == "shrink" and count > running:
            return FlowAsk(kind, service, count, idc, f"{service} runs {running} containers in {idc}; "
                                                      f"{count} cannot be stopped there", running)
        return FlowAsk(kind, service, count, idc, None, running, self._flow_plan(kind, spec, running))

    def _flow_plan(self, kind: str, spec: FlowSpec, running: int) -> str:
        import math

        calls = f"{spec.batch} hosts at a time, each call tried up to {spec.retries} times"
        if kind == "expand":
            head = f"{spec.service} +{spec.count} in {spec.idc} ({running} running there now)."
            body = ("The engine evaluates resources and the pool's quota, borrows shared hosts or orders ECS hosts "
                    f"for what does not fit (and initialises them), places the containers, checks the image is in "
                    f"{spec.idc}'s registry, deploys ({calls}) and registers them in discovery.")
            tpl = next((t for t in self.world.templates if t.service == spec.service), None)
            by_sid = {t.sid: t.service for t in self.world.templates}
            deps = [f"{by_sid[d.sid]} +{math.ceil(d.ratio * spec.count)}" for d in (tpl.dependencies if tpl else ())
                    if d.sid in by_sid and math.ceil(d.ratio * spec.count) >= 1]
            if deps:
                body += f" Its dependencies get flows of their own: {', '.join(deps)} (template ratios)."
        else:
            head = f"{spec.service} -{spec.count} in {spec.idc} ({running} running there now)."
            body = (f"The engine takes {spec.count} containers out of discovery first, where {spec.service} is most "
                    f"crowded, drains them for {spec.drain_s:g} s, stops them ({calls}), then gives borrowed hosts "
                    "left empty back to the shared pool.")
        engine = self.engine_view()
        if engine.mode == "none":
            body += "\nNo engine runs on this store: the flow waits until one starts (cockpit, or cockpit engine)."
        elif engine.mode == "viewer":
            body += f"\nThe engine on {engine.holder} carries it out."
        return f"{head}\n{body}"


@dataclass(frozen=True)
class FlowAsk:
    """A flow as it would be started: the IDC chosen, and what it will do or why it cannot."""

    kind: str
    service: str
    count: int
    idc: str | None
    problem: str | None
    running: int = 0  # containers of the service running in the IDC now
    text: str = ""
