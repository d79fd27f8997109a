"""The facade's host layer: pools and moves, ECS orders, releases and renewals, initialisation,
costs. Every change is an action: checked, audited, and handed to the engine through the store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import peewee as pw

from cockpit.core.costs import CostHost, CostLine, breakdown, expiring, per_hour, per_month
from cockpit.engine.actions import Outcome
from cockpit.engine.requests import requestable
from cockpit.store.db import get_meta
from cockpit.store.models import (ContainerRow, EcsCallRow, EcsOrderRow, EventRow, HostRow, PoolMoveRow, ServiceRow,
                                  TaskRow, TemplateRow)

HISTORY = 100  # pool moves and events shown in a host's history, newest first


@dataclass(frozen=True)
class OrderView:
    id: int
    sid: int
    service: str
    pool: str
    instance_type: str
    count: int
    created: int
    in_flight: int  # instances asked for in calls not answered yet
    state: str
    option: str  # zone/vswitch/security group in use
    fallbacks: list[dict]
    reason: str | None
    errors: int  # calls that came back with an error
    last_error: str | None
    rate: float  # instances a second over the last 10 s
    cost_per_month: float  # of the hosts asked for
    actor: str
    real_created: float
    real_finished: float | None
    created_t: float  # platform time


@dataclass(frozen=True)
class PoolView:
    pool: str
    cluster: str
    kind: str
    idc: str
    hosts_alive: int
    hosts_total: int
    containers: int
    pending_init: int


@dataclass(frozen=True)
class MoveView:
    host: str
    from_pool: str
    to_pool: str
    t: float
    reason: str
    actor: str
    containers_moved: int


@dataclass(frozen=True)
class ContainerView:
    service: str
    name: str
    address: str | None
    ports: list[list[int]]  # [[container port, host port], ...]
    state: str  # starting | running | stopping
    created_t: float


@dataclass(frozen=True)
class HistoryItem:
    t: float  # platform time
    level: str  # info | warn | error
    what: str  # "move", or the event's kind
    text: str


@dataclass(frozen=True)
class HostDetail:
    """Everything about one host, for the describe pane."""

    name: str
    idc: str
    pool: str
    group: str
    hardware: str
    cores: int
    memory_gb: int
    disk_gb: int
    labels: dict[str, str]
    source: str
    zone: str | None
    instance_id: str | None
    order: int | None  # the ECS order that created it
    address: str | None
    charge_type: str
    price: float
    per_hour: float
    per_month: float
    created_t: float
    expires_t: float | None
    released_t: float | None
    alive: bool
    down_until_t: float | None
    status: str
    status_detail: str | None
    init_task: str | None
    cpu_alloc: float
    mem_alloc: float
    disk_alloc: float
    containers: list[ContainerView]
    history: list[HistoryItem]  # newest first


@dataclass(frozen=True)
class CostsView:
    now: float
    lines: list[CostLine]
    expiring: list[tuple[CostHost, float]]
    warn_days: int


class HostsFacade:
    """Mixed into engine.facade.Cockpit (self.cfg, self.world, self.db, self._act, self.clock ...)."""

    # --- reads ----------------------------------------------------------------------------

    def ecs_templates(self) -> list[tuple[int, str, str, str, float, float]]:
        """(sid, name, service, instance type, cost per host per hour, per month) of templates with ECS settings."""
        from cockpit.store import records

        out = []
        for r in TemplateRow.select().order_by(TemplateRow.sid):
            t = records.template(r)
            if t.ecs:
                out.append((t.sid, t.name, t.service, t.ecs.instance_type,
                            per_hour(t.ecs.charge.type, t.ecs.charge.price), per_month(t.ecs.charge.type, t.ecs.charge.price)))
        return out

    def ecs_orders(self, limit: int = 200) -> list[OrderView]:
        now = time.time()
        orders = list(EcsOrderRow.select().order_by(EcsOrderRow.id.desc()).limit(limit))
        ids = [o.id for o in orders]
        in_flight = dict(EcsCallRow.select(EcsCallRow.order, pw.fn.SUM(EcsCallRow.amount))
                         .where(EcsCallRow.order.in_(ids) & EcsCallRow.state.in_(("in_flight", "retry")))
                         .group_by(EcsCallRow.order).tuples())
        errors = dict(EcsCallRow.select(EcsCallRow.order, pw.fn.COUNT(EcsCallRow.id))
                      .where(EcsCallRow.order.in_(ids) & EcsCallRow.error_code.is_null(False))
                      .group_by(EcsCallRow.order).tuples())
        last_error = {c.order: f"{c.error_code}: {c.error_message}" for c in EcsCallRow.select()
                      .where(EcsCallRow.order.in_(ids) & EcsCallRow.error_code.is_null(False)).order_by(EcsCallRow.id)}
        recent: dict[int, int] = {}
        for c in EcsCallRow.select().where(EcsCallRow.order.in_(ids) & (EcsCallRow.state == "ok")
                                           & (EcsCallRow.real_finished >= now - 10)):
            recent[c.order] = recent.get(c.order, 0) + len(c.instance_ids)
        out = []
        for o in orders:
            opt = "/".join(o.options[o.option]) if o.option < len(o.options) else "-"
            out.append(OrderView(
                o.id, o.sid, o.service, o.pool, o.instance_type, o.count, o.created, int(in_flight.get(o.id) or 0),
                o.state, opt, o.fallbacks, o.reason, int(errors.get(o.id) or 0), last_error.get(o.id),
                recent.get(o.id, 0) / 10.0, o.count * per_month(o.charge_type, o.price), o.actor,
                o.real_created, o.real_finished, o.created_t,
            ))
        return out

    def pools(self, hosts: list | None = None) -> list[PoolView]:
        """Per pool and IDC: hosts alive and in all, containers, hosts waiting for initialisation.
        From `hosts` (HostViews) when the caller has them already."""
        kinds = {p.name: (p.cluster, p.kind) for p in self.world.pools}
        acc: dict[tuple[str, str], list[int]] = {}
        for h in hosts if hosts is not None else self.hosts():
            a = acc.setdefault((h.pool, h.idc), [0, 0, 0, 0])
            a[0] += int(h.alive)
            a[1] += 1
            a[2] += h.containers
            a[3] += int(h.status in ("pending", "initialising"))
        return [PoolView(pool, *kinds.get(pool, ("?", "?")), idc, *a) for (pool, idc), a in sorted(acc.items())]

    def hosts_version(self) -> tuple:
        """A fingerprint of what `:hosts` shows, read in a few ms where reading every host takes
        tens: (the platform version, the last pool move, each pool's hosts per state). The first
        two change when containers, pools or the hosts in service change; the third alone when
        hosts only went down or up or moved on in their initialisation (see host_states)."""
        states = (HostRow.select(HostRow.pool, HostRow.status, HostRow.alive, pw.fn.COUNT(HostRow.id),
                                 pw.fn.SUM(HostRow.id))
                  .where(HostRow.released_t.is_null())
                  .group_by(HostRow.pool, HostRow.status, HostRow.alive)
                  .order_by(HostRow.pool, HostRow.status, HostRow.alive))
        last_move = PoolMoveRow.select(pw.fn.MAX(PoolMoveRow.id)).scalar()
        return get_meta("platform_version"), last_move, tuple(self.db.execute(states).fetchall())

    def host_states(self) -> dict[str, tuple[bool, str]]:
        """Each host in service: (alive, initialisation status). What changes most at a peak,
        read without the rest of the host."""
        q = HostRow.select(HostRow.name, HostRow.alive, HostRow.status).where(HostRow.released_t.is_null())
        return {name: (bool(alive), status) for name, alive, status in self.db.execute(q).fetchall()}

    def host_detail(self, name: str) -> HostDetail | None:
        """The host named `name` (in service or released), its containers and its history; None
        when there is no such host."""
        h = HostRow.get_or_none(HostRow.name == name)
        if h is None:
            return None
        units = {r.name: (r.cpu, r.memory_gb, r.disk_gb) for r in ServiceRow.select()}
        containers = [ContainerView(c.service, c.name or f"#{c.id}", c.address, c.ports or [], c.state, c.created_t)
                      for c in ContainerRow.select().where(ContainerRow.host == h.id)
                      .order_by(ContainerRow.service, ContainerRow.id)]
        held = [units[c.service] for c in containers if c.service in units]
        moves = [HistoryItem(m.t, "info", "move", _move_text(m))
                 for m in PoolMoveRow.select().where(PoolMoveRow.host == name).order_by(PoolMoveRow.id.desc())
                 .limit(HISTORY)]
        events = [HistoryItem(e.t, e.level, e.kind, e.message)
                  for e in EventRow.select().where(EventRow.scope == name).order_by(EventRow.id.desc()).limit(HISTORY)]
        history = sorted(moves + events, key=lambda i: i.t, reverse=True)[:HISTORY]
        return HostDetail(
            h.name, h.idc, h.pool, h.group, h.hardware, h.cores, h.memory_gb, h.disk_gb, h.labels or {}, h.source,
            h.zone, h.instance_id, h.order, h.address, h.charge_type, h.price, per_hour(h.charge_type, h.price),
            per_month(h.charge_type, h.price), h.created_t, h.expires_t, h.released_t, h.alive, h.down_until_t,
            h.status, h.status_detail, h.init_task, sum(u[0] for u in held), sum(u[1] for u in held),
            sum(u[2] for u in held), containers, history,
        )

    def moves(self, limit: int = 200) -> list[MoveView]:
        q = PoolMoveRow.select().order_by(PoolMoveRow.id.desc()).limit(limit)
        return [MoveView(m.host, m.from_pool, m.to_pool, m.t, m.reason, m.actor, m.containers_moved) for m in q]

    def costs(self) -> CostsView:
        now = self.clock().t
        clusters = {p.name: p.cluster for p in self.world.pools}
        hosts = [
            CostHost(h.name, h.idc, clusters.get(h.pool, "?"), h.pool, h.charge_type, h.price, h.created_t,
                     h.released_t, h.expires_t)
            for h in HostRow.select()
        ]
        local = datetime.fromtimestamp(now, self.world.traffic.tz)
        month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        days = self.cfg.expiry_warn_days
        return CostsView(now, breakdown(hosts, now, month_start), expiring(hosts, now, days), days)

    # --- actions --------------------------------------------------------------------------

    def _queue_task(self, action: str, kind: str, target: str, spec: dict, what: str) -> Outcome:
        now = self.clock().t

        def do() -> tuple[str, int]:
            tid = TaskRow.insert(kind=kind, state="queued", spec=spec, actor=self.cfg.user, created_t=now,
                                 updated_t=now, real_created=time.time()).execute()
            return f"task {tid} queued: {what}", tid

        return self._act(action, target, spec, do)

    @requestable
    def order_hosts(self, sid: int, count: int, pool: str | None = None) -> Outcome:
        from cockpit.engine.orders import place_order, quote
        from cockpit.store import records

        row = TemplateRow.get_or_none(TemplateRow.sid == sid)
        if row is None:
            return Outcome(False, f"no template with sid {sid}")
        tpl = records.template(row)
        details = {"sid": sid, "count": count, "pool": pool or tpl.pool}
        if tpl.ecs is not None:
            details["cost_per_month"] = round(quote(tpl, count)[1], 2)

        def do() -> str:
            oid = place_order(self.world, tpl, count, pool, self.cfg.user, self.clock().t)
            return f"ECS order {oid}: {count} x {tpl.ecs.instance_type} for {pool or tpl.pool}"

        outcome = self._act("ecs.order", f"template {sid}", details, do)  # an OrderError is audited as failed
        self._kick_drainer()
        return outcome

    def _kick_drainer(self) -> None:
        if self.engine is not None and self.engine.drainer is not None:
            self.engine.drainer.kick()

    def _order_state(self, action: str, order_id: int, allowed: tuple[str, ...], to: str, **extra) -> Outcome:
        o = EcsOrderRow.get_or_none(EcsOrderRow.id == order_id)
        if o is None:
            return Outcome(False, f"no ECS order {order_id}")

        def do() -> str:
            current = EcsOrderRow.get_by_id(order_id)
            if current.state not in allowed:
                raise ValueError(f"order {order_id} is {current.state}; {action.split('.')[1]} needs it {' or '.join(allowed)}")
            EcsOrderRow.update(state=to, **extra).where(EcsOrderRow.id == order_id).execute()
            return f"ECS order {order_id}: {to}"

        outcome = self._act(action, f"order {order_id}", {"order": order_id, "from": o.state, "to": to}, do)
        self._kick_drainer()
        return outcome

    @requestable
    def pause_order(self, order_id: int) -> Outcome:
        return self._order_state("ecs.pause", order_id, ("queued", "running"), "paused")

    @requestable
    def resume_order(self, order_id: int) -> Outcome:
        return self._order_state("ecs.resume", order_id, ("paused",), "running")

    @requestable
    def cancel_order(self, order_id: int) -> Outcome:
        return self._order_state("ecs.cancel", order_id, ("queued", "running", "paused"), "cancelled",
                                 real_finished=time.time())

    @requestable
    def retry_order(self, order_id: int) -> Outcome:
        """A stopped order starts again from its first zone: stock may have come back."""
        return self._order_state("ecs.retry", order_id, ("failed", "cancelled"), "queued", option=0, reason=None,
                                 real_finished=None)

    def move_problem(self, *, to_pool: str, from_pool: str | None = None, idc: str | None = None,
                     count: int | None = None, hosts: list[str] | None = None) -> str | None:
        """Why a move cannot be queued, judged from the world and the store now; None when it can.
        The engine checks again when it runs the move (hosts may have gone down meanwhile)."""
        pools = {p.name for p in self.world.pools}
        for pool in (to_pool, from_pool):
            if pool is not None and pool not in pools:
                return f"no pool named {pool!r} (pools: {', '.join(sorted(pools))})"
        if hosts:
            return _hosts_problem(hosts, to_pool)
        if not from_pool or count is None or count < 1:
            return "a move needs hosts, or a pool to take them from and a count of at least 1"
        if from_pool == to_pool:
            return f"the hosts are in pool {to_pool} already"
        idcs = {i.name for i in self.world.idcs}
        if idc is not None and idc not in idcs:
            return f"no IDC named {idc!r} (IDCs: {', '.join(sorted(idcs))})"
        live = HostRow.select().where((HostRow.pool == from_pool) & HostRow.released_t.is_null()
                                   & (HostRow.alive == True))  # noqa: E712
        if idc is not None:
            live = live.where(HostRow.idc == idc)
        n = live.count()
        if count > n:
            return f"{from_pool}{' in ' + idc if idc else ''} has {n} live hosts; {count} asked for"
        return None

    @requestable
    def move_hosts(self, *, to_pool: str, from_pool: str | None = None, idc: str | None = None,
                   count: int | None = None, hosts: list[str] | None = None, reason: str = "move") -> Outcome:
        why = self.move_problem(to_pool=to_pool, from_pool=from_pool, idc=idc, count=count, hosts=hosts)
        if why:
            return Outcome(False, why)
        if hosts:
            spec = {"hosts": hosts, "to_pool": to_pool, "reason": reason}
            what = f"{len(hosts)} hosts to {to_pool}"
        else:
            spec = {"from_pool": from_pool, "idc": idc, "count": count, "to_pool": to_pool, "reason": reason}
            what = f"{count} hosts of {from_pool}{' in ' + idc if idc else ''} to {to_pool}"
        return self._queue_task("pool.move", "pool_move", to_pool, spec, what)

    @requestable
    def release_hosts(self, hosts: list[str]) -> Outcome:
        return self._queue_task("host.release", "release", ",".join(hosts[:5]),
                                {"hosts": hosts, "reason": "released by hand"}, f"release {len(hosts)} cloud hosts")

    @requestable
    def renew_hosts(self, hosts: list[str], months: int = 1) -> Outcome:
        if not 1 <= months <= 60:
            return Outcome(False, "months must be from 1 to 60")
        return self._queue_task("host.renew", "renew", ",".join(hosts[:5]), {"hosts": hosts, "months": months},
                                f"renew {len(hosts)} prepaid hosts for {months} month(s)")

    @requestable
    def retry_init(self, hosts: list[str]) -> Outcome:
        def do() -> str:
            n = HostRow.update(status="pending", init_task=None, status_detail=None).where(
                HostRow.name.in_(hosts) & HostRow.status.in_(("failed", "timed_out"))).execute()
            if not n:
                raise ValueError("none of those hosts failed or timed out")
            return f"{n} hosts queued for initialisation again"

        return self._act("init.retry", ",".join(hosts[:5]), {"hosts": hosts}, do)


MAX_MOVE_HOSTS = 5000  # named hosts in one move


def _move_text(m: PoolMoveRow) -> str:
    moved = f"; {m.containers_moved} containers re-placed" if m.containers_moved else ""
    return f"pool {m.from_pool} → {m.to_pool} ({m.reason}, by {m.actor}{moved})"


def _hosts_problem(hosts: list[str], to_pool: str) -> str | None:
    """Named hosts must each be named once, exist and be in service, and not all be in to_pool."""
    if len(hosts) > MAX_MOVE_HOSTS:
        return f"at most {MAX_MOVE_HOSTS} hosts in one move, got {len(hosts)}"
    seen: set[str] = set()
    for h in hosts:
        if h in seen:
            return f"host {h!r} is named twice"
        seen.add(h)
    rows = {r.name: r.pool for r in HostRow.select(HostRow.name, HostRow.pool)
            .where(HostRow.name.in_(hosts) & HostRow.released_t.is_null())}
    missing = [h for h in hosts if h not in rows]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return f"no such host in service: {', '.join(map(repr, missing[:5]))}{more}"
    if all(rows[h] == to_pool for h in hosts):
        return f"{'that host is' if len(hosts) == 1 else 'those hosts are'} in pool {to_pool} already"
    return None
