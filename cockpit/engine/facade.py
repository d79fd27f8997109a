"""The one door screens and the CLI use: reads of platform state, and actions that are checked,
audited and handed to the engine through the store. Methods are safe to call from worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import peewee as pw

from cockpit.config import Config
from cockpit.core.audit_chain import Walk as AuditChain
from cockpit.domain import ScopeStats, World
from cockpit.engine import journal
from cockpit.engine.actions import ACTIONS, Outcome, refusal
from cockpit.engine.requests import requestable
from cockpit.engine.facade_hosts import HostsFacade
from cockpit.engine.facade_headroom import HeadroomFacade
from cockpit.engine.facade_registry import RegistryFacade
from cockpit.engine.facade_scale import ScaleFacade
from cockpit.engine.facade_flows import FlowsFacade
from cockpit.engine.lease import current_holder
from cockpit.store.db import db_now, describe, describe_for
from cockpit.store.models import ClockRow, EventRow, LiveRow, MetricRow, ServiceRow, TaskRow

if TYPE_CHECKING:
    from cockpit.engine.health import BackendState
    from cockpit.core.whatif import Catalog, Preview, WhatIf
    from cockpit.engine.engine import Engine

log = logging.getLogger(__name__)
TREND_H = 6.0


@dataclass(frozen=True)
class ClockView:
    t: float
    speed: float
    paused: bool
    tick: int
    real_t: float

    def local(self, world: World) -> datetime:
        return datetime.fromtimestamp(self.t, world.traffic.tz)


@dataclass(frozen=True)
class EngineView:
    mode: str  # active | viewer | starting
    holder: str | None  # host:pid of the active engine, when known
    stale_s: float | None  # seconds since the last tick, when that is too long
    error: str | None = None


@dataclass(frozen=True)
class Trend:
    t: list[float]
    cpu: list[float]
    qps: list[float]


@dataclass(frozen=True)
class EventView:
    id: int
    t: float
    level: str
    kind: str
    scope: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    clock: ClockView
    engine: EngineView
    rows: list[ScopeStats] | None  # None when nothing changed since the tick asked about
    trends: dict[str, Trend] = field(default_factory=dict)
    last_event: EventView | None = None
    down: tuple[BackendState, ...] = ()  # backends not answering, worst first (engine/health.py)


@dataclass(frozen=True)
class HostView:
    name: str
    idc: str
    pool: str
    hardware: str
    cores: int
    memory_gb: int
    disk_gb: int
    labels: dict[str, str]
    source: str
    zone: str | None
    charge_type: str
    alive: bool
    status: str
    containers: int
    cpu_alloc: float  # cores reserved
    mem_alloc: float  # GB reserved
    disk_alloc: float  # GB reserved
    services: dict[str, int]

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "idc": self.idc,
            "pool": self.pool,
            "hardware": self.hardware,
            "labels": self.labels,
            "source": self.source,
            "zone": self.zone,
            "charge_type": self.charge_type,
            "alive": self.alive,
            "status": self.status,
            "capacity": {"cores": self.cores, "memory_gb": self.memory_gb, "disk_gb": self.disk_gb},
            "allocated": {
                "containers": self.containers,
                "cores": round(self.cpu_alloc, 3),
                "memory_gb": round(self.mem_alloc, 3),
                "disk_gb": round(self.disk_alloc, 3),
                "services": self.services,
            },
        }


@dataclass(frozen=True)
class AuditView:
    id: int
    real_t: float  # the wall clock, to match the audit with other logs
    platform_t: float | None  # the platform's clock when it was asked (None in rows older than that column)
    user: str
    role: str
    action: str
    target: str
    outcome: str
    details: dict
    host: str = ""  # where it was asked ("" in entries older than schema 8)
    db_user: str | None = None  # PostgreSQL: the database role that wrote it (an engine's, for a request)


@dataclass(frozen=True)
class AuditFilter:
    """`:audit`'s explicit filters (None: any). `action` may end in `.*` (`flow.*`)."""

    user: str | None = None
    action: str | None = None
    outcome: str | None = None

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in (("user", self.user), ("action", self.action),
                                                  ("outcome", self.outcome)) if v)


@dataclass(frozen=True)
class TaskView:
    id: int
    kind: str
    state: str
    progress: dict
    reason: str | None


def _placed(parts: list, services: set[str]) -> tuple[dict[str, int], str | None]:
    """Containers per service that a scale task's parts place, or why the parts are not a plan."""
    placed: dict[str, int] = {}
    for k, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("service") not in services:
            return {}, f"part {k}: not a part of a plan for a known service"
        spots = part.get("placements")
        if not isinstance(spots, list) or not all(
                isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and type(x[1]) is int and 0 < x[1] <= 10_000
                for x in spots):
            return {}, f"part {k}: placements must be [host, count] pairs"
        placed[part["service"]] = placed.get(part["service"], 0) + sum(n for _, n in spots)
    if sum(placed.values()) > 100_000:
        return {}, "more than 100000 containers in one plan"
    return placed, None


def _nothing_to_apply() -> str:
    raise ValueError("nothing to apply: no container of the plan fits")


class Cockpit(HostsFacade, RegistryFacade, HeadroomFacade, ScaleFacade, FlowsFacade):
    def __init__(
        self,
        cfg: Config,
        world: World,
        db: pw.Database,
        engine: Engine | None = None,
        real_clock: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        self.world = world
        self.db = db
        self.engine = engine
        self.engine_expected = engine is not None  # an engine is on its way: say "starting", not "none"
        self.engine_child: int | None = None  # the pid of this Cockpit's own engine process, when it runs apart
        self.real_clock = real_clock
        self._series: dict[str, deque] = {}
        self._series_t = 0.0
        self._lock = threading.Lock()
        self.requests = None  # a RequestClient when this Cockpit may not write: actions go to the engine
        self.asked: tuple[int, str] | None = None  # (request, host) when an engine acts for a request
        self.audited = False  # an entry was written for what this facade was asked

    def attach(self, engine: Engine) -> None:
        self.engine = engine
        self.engine_expected = True

    def discovery(self):
        """The discovery store the engine in this process uses (None without one)."""
        return getattr(self.engine, "discovery", None) if self.engine is not None else None

    @property
    def readonly(self) -> bool:
        return self.cfg.readonly

    # --- reads ----------------------------------------------------------------------------

    def clock(self) -> ClockView:
        row = ClockRow.get_by_id(1)
        return ClockView(row.t, row.speed, row.paused, row.tick, row.real_t)

    def engine_view(self, clock: ClockView | None = None) -> EngineView:
        clock = clock or self.clock()
        age = db_now(self.db) - clock.real_t  # both the database's clock: hosts' clocks may differ
        stale = age if age > max(3 * self.cfg.tick_s, 3.0) else None
        error = None
        if self.engine is not None:  # the engine's own trouble first, then its flows' (a discovery store away)
            flows = self.engine.flows
            error = self.engine.last_error or (flows.last_error if flows is not None else None)
        if self.engine is not None and self.engine.active:
            return EngineView("active", None, stale, error)
        holder = current_holder()
        if holder is not None:
            return EngineView("viewer", str(holder), stale, error)
        # Nobody holds the lease: ours is about to take it, or no engine runs on this store.
        return EngineView("starting" if self.engine_expected else "none", None, stale, error)

    def snapshot(self, since_tick: int | None = None) -> Snapshot:
        """Clock and engine always; the dashboard rows and trends when the tick moved."""
        clock = self.clock()
        engine = self.engine_view(clock)
        if since_tick is not None and clock.tick == since_tick:
            return Snapshot(clock, engine, None)
        rows = [
            ScopeStats(r.scope, r.hosts_alive, r.hosts_total, r.containers, r.cpu_pct, r.alloc_pct, r.qps)
            for r in LiveRow.select()
        ]
        last = self.events(limit=1)
        # with no engine the header says so; what none is checking is for :backends to show
        down = tuple(b for b in self.backends(engine) if not b.ok) if engine.mode != "none" else ()
        return Snapshot(clock, engine, _ordered(rows), self._trends(clock.t), last[0] if last else None, down)

    def _trends(self, now: float) -> dict[str, Trend]:
        with self._lock:
            horizon = now - TREND_H * 3600
            if now < self._series_t:  # the clock went back (a reset store): start over
                self._series.clear()
                self._series_t = 0.0
            q = MetricRow.select(MetricRow.scope, MetricRow.t, MetricRow.cpu_pct, MetricRow.qps).where(
                MetricRow.t > max(self._series_t, horizon)
            ).order_by(MetricRow.t)
            for scope, t, cpu, qps in q.tuples():
                self._series.setdefault(scope, deque()).append((t, cpu, qps))
                self._series_t = max(self._series_t, t)
            out = {}
            for scope, dq in self._series.items():
                while dq and dq[0][0] <= horizon:
                    dq.popleft()
                out[scope] = Trend([x[0] for x in dq], [x[1] for x in dq], [x[2] for x in dq])
            return out

    def hosts(self) -> list[HostView]:
        """Every host in service, in the store's order, with what its containers reserve. Rows
        come from the cursor as they are (no model objects), containers are counted by the
        database, and each distinct label set is parsed once: 6,000 hosts in tens of ms."""
        from cockpit.core.placement import MIB, MILLI, cpu_units, mem_units
        from cockpit.store.models import ContainerRow, HostRow

        per_unit = {name: (cpu_units(cpu), mem_units(mem), mem_units(disk)) for name, cpu, mem, disk in
                    ServiceRow.select(ServiceRow.name, ServiceRow.cpu, ServiceRow.memory_gb, ServiceRow.disk_gb)
                    .order_by(ServiceRow.name).tuples()}
        placed: dict[int, dict[str, int]] = {}
        counted = ContainerRow.select(ContainerRow.host, ContainerRow.service, pw.fn.COUNT(ContainerRow.id)).group_by(
            ContainerRow.host, ContainerRow.service)
        for host, service, n in self.db.execute(counted).fetchall():
            if service in per_unit:  # a container of a service no longer known holds nothing
                placed.setdefault(host, {})[service] = n
        order = list(per_unit)  # services listed by name, as the planner's table has them
        h = HostRow
        q = (h.select(h.id, h.name, h.idc, h.pool, h.hardware, h.cores, h.memory_gb, h.disk_gb, h.labels, h.source,
                      h.zone, h.charge_type, h.alive, h.status)
             .where(h.released_t.is_null()).order_by(h.id))
        label_sets: dict[str, dict[str, str]] = {}
        out = []
        for hid, name, idc, pool, hw, cores, mem, disk, labels, source, zone, charge, alive, status in (
                self.db.execute(q).fetchall()):
            if labels not in label_sets:
                label_sets[labels] = h.labels.python_value(labels) or {}  # a damaged value: StoreError
            got = placed.get(hid)
            per = {s: got[s] for s in order if s in got} if got else {}
            cpu = memu = disku = 0
            for s, n in per.items():
                c, m, d = per_unit[s]
                cpu += c * n
                memu += m * n
                disku += d * n
            out.append(HostView(name, idc, pool, hw, cores, mem, disk, dict(label_sets[labels]), source, zone, charge,
                                bool(alive), status, sum(per.values()), cpu / MILLI, memu / MIB, disku / MIB, per))
        return out

    def backends(self, engine_view: EngineView | None = None) -> list[BackendState]:
        """How each backend last answered, worst first: from this process's engine when it is the
        active one (in memory: it still answers with the store away), else as the active engine
        last wrote it. Registries as the replicator's pings found them. `engine_view`: the engine
        as just read (a snapshot has read the lease already)."""
        from cockpit.engine import health
        from cockpit.store.models import RegistryHealthRow

        engine = self.engine
        if engine is not None and engine.active:
            states = engine.backend_health.states()
        else:
            held = engine_view.mode == "viewer" if engine_view is not None else current_holder() is not None
            # no engine checks them now: what the last one saw is not said as the present
            states = health.stored() if held else [health.unchecked(b) for b in health.stored()]
        try:  # a registry the engine has not told of yet: as its last ping found it
            known = {(b.kind, b.name) for b in states}
            for r in RegistryHealthRow.select():
                if ("registry", r.registry) not in known:
                    states.append(health.BackendState("registry", r.registry, r.ok, r.checked_real if r.ok else None,
                                                      None, r.error, r.checked_real))
        except pw.PeeweeException:
            if not states:
                raise
        return sorted(states, key=health.order)

    def events(self, after_id: int = 0, limit: int = 500) -> list[EventView]:
        q = EventRow.select().where(EventRow.id > after_id).order_by(EventRow.id.desc()).limit(limit)
        return [EventView(r.id, r.t, r.level, r.kind, r.scope, r.message) for r in reversed(list(q))]

    def audit_log(self, limit: int = 500, after_id: int = 0, where: AuditFilter | None = None) -> list[AuditView]:
        """The newest `limit` entries after `after_id` that pass the filter, newest first."""
        f = where or AuditFilter()
        return [AuditView(e.id, e.real_t, e.platform_t, e.user, e.role, e.action, e.target, e.outcome, e.details,
                          e.host, e.db_user)
                for e in journal.find(user=f.user, action=f.action, outcome=f.outcome, after_id=after_id, limit=limit)]

    def done_since(self, action_id: str, since_real: float) -> int | None:
        """The audit entry of this action done by this user since then, if any (an action whose
        commit's answer was lost took after all)."""
        found = journal.find(user=self.cfg.user, action=action_id, outcome="done", since_real=since_real, limit=1)
        return found[0].id if found else None

    def audit_choices(self) -> dict[str, list[str]]:
        """The users, actions and outcomes the audit log holds: the filter form's choices."""
        return {c: journal.distinct(c) for c in ("user", "action", "outcome")}

    def audit_chain(self, since: AuditChain | None = None) -> AuditChain:
        """Walk the audit log's hash chain: whole, or where it first breaks. Given the last walk,
        only entries after its head are walked (once the head is found unchanged)."""
        return journal.verify(since)

    # --- what-if ------------------------------------------------------------------------

    def catalog(self, services: dict | None = None) -> Catalog:
        """Services (read now unless given), templates, hardware: what a preview needs besides hosts."""
        from cockpit.engine.state import catalog

        return catalog(self.world, services)

    def plan_targets(self) -> list[str]:
        """What `:plan` can preview: services, then templates by name."""
        cat = self.catalog()
        return sorted(cat.services) + [t.name for _, t in sorted(cat.templates.items())]

    def whatif(self, **fields) -> WhatIf:
        """A request from the plan form's text fields; WhatIfError names what is wrong."""
        from cockpit.core.whatif import build

        return build(self.catalog(), self.world.custom_scoring, idcs={i.name for i in self.world.idcs}, **fields)

    def preview(self, req: WhatIf) -> Preview:
        from cockpit.core.whatif import preview
        from cockpit.engine.state import current_table

        table, services, _ = current_table()
        return preview(table, self.catalog(services), req)

    def compare(self, req: WhatIf) -> dict[str, Preview]:
        """The request under every strategy, on the same snapshot of the platform."""
        from cockpit.core.whatif import compare, strategies_to_compare
        from cockpit.engine.state import current_table

        table, services, _ = current_table()
        cat = self.catalog(services)
        return compare(table, cat, req, strategies_to_compare(req, cat, self.world.custom_scoring))

    def apply_plan(self, p: Preview) -> Outcome:
        """Hand a previewed plan to the engine as a scale task; it re-checks every placement."""
        from cockpit.engine.scale import scale_parts

        return self.queue_plan(p.request.describe(), scale_parts(p), {sp.service: sp.plan.unplaced for sp in p.parts})

    @requestable
    def queue_plan(self, request: str, parts: list, unplaced: dict) -> Outcome:
        """A plan as the preview showed it (its parts carry every placement): a scale task. What
        is audited is what the parts place, whoever described them."""
        placed, why = _placed(parts, {s.name for s in self.world.services})
        if why:
            return Outcome(False, f"plan: {why}")
        details = {"request": request[:200], "placed": placed, "unplaced": unplaced}
        service = parts[0]["service"] if parts else "(nothing)"
        if not any(placed.values()):
            return self._act("plan.apply", service, details, _nothing_to_apply)
        now = self.clock().t

        def do() -> tuple[str, int]:
            tid = TaskRow.insert(kind="scale", state="queued", spec={"request": request[:200], "parts": parts},
                                 actor=self.cfg.user, created_t=now, updated_t=now,
                                 real_created=self.real_clock()).execute()
            what = ", ".join(f"{s} +{n}" for s, n in placed.items())
            return f"scale task {tid} queued: {what}", tid

        return self._act("plan.apply", service, details, do)

    @requestable
    def scale_in(self, service: str, count: int, idc: str | None = None) -> Outcome:
        """Stop `count` containers of a service (in one IDC, or any): a task for the engine, which
        stops them where the service is most crowded first."""
        if service not in {s.name for s in self.world.services}:
            return Outcome(False, f"no service named {service!r}")
        if idc is not None and idc not in {i.name for i in self.world.idcs}:
            return Outcome(False, f"no IDC named {idc!r}")
        if not 1 <= count <= 100_000:
            return Outcome(False, f"count must be from 1 to 100000, got {count}")
        now = self.clock().t
        spec = {"service": service, "count": count, "idc": idc}

        def do() -> tuple[str, int]:
            tid = TaskRow.insert(kind="scale_in", state="queued", spec=spec, actor=self.cfg.user, created_t=now,
                                 updated_t=now, real_created=self.real_clock()).execute()
            return f"scale task {tid} queued: {service} -{count}" + (f" in {idc}" if idc else ""), tid

        return self._act("service.scale_in", service, spec, do)

    def task(self, task_id: int) -> TaskView | None:
        row = TaskRow.get_or_none(TaskRow.id == task_id)
        return TaskView(row.id, row.kind, row.state, row.progress, row.reason) if row else None

    # --- actions --------------------------------------------------------------------------

    def refusal(self, action_id: str) -> str | None:
        why = refusal(action_id, role=self.cfg.role, readonly=self.cfg.readonly)
        if why and not self.cfg.readonly:  # a role too low: say where the role comes from
            why += f" ({self.cfg.identity.describe()})"
        return why

    @requestable(wait=False)
    def record_refusal(self, action_id: str, target: str = "") -> Outcome:
        """An action refused before it was asked in full (a key pressed in read-only mode)."""
        if action_id not in ACTIONS:
            return Outcome(False, f"no action {action_id[:64]!r}", refused=True)
        why = self.refusal(action_id)
        if why is None:  # allowed: there is no refusal to record
            return Outcome(False, f"{ACTIONS[action_id].title}: allowed, so nothing was refused", refused=True)
        self._audit(action_id, target or "(a key pressed)", {"why": why}, "refused")
        return Outcome(False, f"{ACTIONS[action_id].title}: {why}", refused=True)

    def _audit(self, action_id: str, target: str, details: dict, outcome: str, platform_t: float | None = None) -> None:
        """An entry as this Cockpit's user; for a request, with where it was asked and its number."""
        host = None
        if self.asked is not None:
            details = {**details, "request": self.asked[0]}
            host = self.asked[1]
        journal.audit(user=self.cfg.user, role=self.cfg.role, action=action_id, target=target, details=details,
                      outcome=outcome, platform_t=self.clock().t if platform_t is None else platform_t, host=host)
        self.audited = True

    def _act(self, action_id: str, target: str, details: dict, do: Callable[[], str | tuple[str, int]]) -> Outcome:
        if self.requests is not None:  # every action method is @requestable: this is never reached
            return Outcome(False, f"{ACTIONS[action_id].title}: this Cockpit may not write the store", refused=True)
        platform_t = self.clock().t
        why = self.refusal(action_id)
        if why:
            self._audit(action_id, target, details, "refused", platform_t)
            return Outcome(False, f"{ACTIONS[action_id].title}: {why}", refused=True)
        try:
            with self.db.atomic():
                said = do()  # what was done, or that and the task it queued
                self._audit(action_id, target, details, "done", platform_t)
            message, task = said if isinstance(said, tuple) else (said, None)
            return Outcome(True, message, task)
        except (pw.PeeweeException, ValueError) as e:
            said = describe_for(e, self.db) if isinstance(e, pw.PeeweeException) else str(e)
            try:
                self._audit(action_id, target, {**details, "error": said}, "failed", platform_t)
            except pw.PeeweeException as again:  # the store that failed the action (a full disk) fails this too
                log.warning("%s: its failure could not be audited either: %s", action_id, describe(again))
            return Outcome(False, f"{ACTIONS[action_id].title} failed: {said}")

    @requestable
    def set_speed(self, speed: float) -> Outcome:
        if not (0 < speed <= 100_000):
            return Outcome(False, f"speed must be between 0 and 100000, got {speed:g}")

        def do() -> str:
            ClockRow.update(speed=speed).where(ClockRow.id == 1).execute()
            return f"platform clock at x{speed:g}"

        return self._act("sim.speed", "clock", {"speed": speed}, do)

    @requestable
    def set_paused(self, paused: bool) -> Outcome:
        def do() -> str:
            ClockRow.update(paused=paused).where(ClockRow.id == 1).execute()
            return "platform clock paused" if paused else "platform clock running"

        return self._act("sim.pause", "clock", {"paused": paused}, do)

    @requestable
    def inject_hot_event(self, services: list[str], factor: float, minutes: int) -> Outcome:
        unknown = [s for s in services if s not in {x.name for x in self.world.services}]
        if unknown or not services:
            return Outcome(False, f"no such service: {', '.join(unknown) or '(none given)'}")
        if not (1 < factor <= 100) or not (1 <= minutes <= 10080):
            return Outcome(False, "factor must be in (1, 100] and minutes in [1, 10080]")
        now = self.clock().t
        name = f"manual-{datetime.fromtimestamp(now, self.world.traffic.tz):%H%M}"
        spec = {"name": name, "services": services, "factor": factor, "duration_min": minutes, "start_t": now}

        def do() -> str:
            TaskRow.insert(
                kind="hot_event", state="running", spec=spec, actor=self.cfg.user,
                created_t=now, updated_t=now, real_created=self.real_clock(),
            ).execute()
            return f"hot event {name}: {', '.join(services)} x{factor:g} for {minutes} min"

        return self._act("sim.hot_event", ",".join(services), spec, do)


def _ordered(rows: list[ScopeStats]) -> list[ScopeStats]:
    """all, then each IDC followed by its pools: the dashboard's reading order."""

    def key(s: ScopeStats):
        if s.scope == "all":
            return ("", "")
        idc, _, pool = s.scope.partition("/")
        return (idc, pool)

    return sorted(rows, key=key)
