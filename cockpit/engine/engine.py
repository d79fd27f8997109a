"""The engine: APScheduler is its clock; the rules, queues and state live in the store.

One engine is active per database (see lease.py). Inside the TUI it runs on Textual's own
event loop; `cockpit engine` runs the same object headless. Every tick runs in a worker thread
so the UI never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import peewee as pw
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from cockpit.backends.base import Cloud, CloudError, ContainerRuntime, ContainerSpec, HostHealth, HostInit, Telemetry
from cockpit.backends.factory import InitSettings, init_target
from cockpit.backends.sim.clock import SimClock
from cockpit.backends.sim.platform import SimHostHealth, SimTelemetry
from cockpit.core import load, traffic
from cockpit.core.schedule import crossings
from cockpit.domain import HotEvent, World
from cockpit.engine import journal
from cockpit.engine.ecs import DrainSettings, EcsDrainer
from cockpit.engine.init import InitRunner, StatusWriter
from cockpit.engine.lease import POLL_S, TTL_S, Lease, LeaseLost
from cockpit.engine.outside import Handler
from cockpit.engine.seed import SAMPLE_S, metric_row
from cockpit.engine.state import PlatformState
from cockpit.engine.tasks import Runner
from cockpit.store.db import get_meta, now_sql
from cockpit.store.models import ClockRow, ContainerRow, EventRow, HostRow, LiveRow, MetricRow, PoolMoveRow, TaskRow

log = logging.getLogger(__name__)

RETAIN_METRICS_S = 8 * 86400.0
LIVE_FIELDS = [LiveRow.t, LiveRow.hosts_alive, LiveRow.hosts_total, LiveRow.containers, LiveRow.cpu_pct,
               LiveRow.alloc_pct, LiveRow.qps]
RETAIN_EVENTS = 20_000
MAX_SAMPLES_PER_TICK = 360


class Engine:
    def __init__(
        self,
        db: pw.Database,
        world: World,
        *,
        speed: float | None = None,
        tick_s: float = 1.0,
        lease_ttl: float | None = None,
        lease_clock: Callable[[], float] | None = None,
        real_clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
        health: HostHealth | None = None,
        runtime: ContainerRuntime | None = None,
        cloud: Cloud | None = None,
        drain: DrainSettings | None = None,
        init: HostInit | None = None,
        init_settings: InitSettings | None = None,
        expiry_warn_days: int = 7,
    ):
        self.db = db
        self.world = world
        self.tick_s = tick_s
        self.real_clock = real_clock
        self.lease = Lease(db, ttl=lease_ttl or TTL_S, clock=lease_clock)
        self.telemetry = telemetry or SimTelemetry(world)
        self.health = health or SimHostHealth(world)
        self.runtime = runtime
        self.cloud = cloud
        self.drain_settings = drain or DrainSettings()
        self.init_backend = init
        self.init_settings = init_settings or InitSettings()
        self.expiry_warn_days = expiry_warn_days
        self.drainer: EcsDrainer | None = None
        self.writer: StatusWriter | None = None
        self.init_runner: InitRunner | None = None
        self.speed_override = speed
        self.runner: Runner | None = None
        self._force_next = False
        self.active = False
        self.last_error: str | None = None
        self.state: PlatformState | None = None
        self.clock: SimClock | None = None
        self._version: str | None = None
        self._last_t = 0.0
        self._ticks = 0
        self._lock = threading.Lock()
        self._scheduler = None

    # --- becoming active ----------------------------------------------------------------

    def step_lease(self) -> bool:
        """Standby: take the lease when it is free. Returns whether this engine is active."""
        with self._lock:
            try:
                if self.active:
                    with self.lease.fenced():  # the heartbeat, between ticks
                        pass
                elif self.lease.acquire():
                    self._activate()
                    self._tick()  # at once: the platform has not moved since its last engine died
            except LeaseLost:
                self._lost()
            except pw.PeeweeException as e:
                self._failed(e)
            return self.active

    def _activate(self) -> None:
        real = self.real_clock()
        with self.lease.fenced():
            row = ClockRow.get_by_id(1)
            speed = self.speed_override if self.speed_override is not None else row.speed
            if speed != row.speed:
                ClockRow.update(speed=speed).where(ClockRow.id == 1).execute()
            journal.event(row.t, "info", "engine", "engine", f"engine active on {self.lease.host}:{self.lease.pid}")
        self.clock = SimClock(row.t, real, speed, row.paused)
        self._last_t = row.t
        self._load_state()
        if self.runtime is None:
            self.runtime = sim_runtime()
        self.runner = Runner(self.lease.fenced, self.handlers(), self.platform_now, self.real_clock, self.world,
                             random.Random(self.world.seed))
        self.active = True
        self.last_error = None
        self._start_workers()

    def platform_now(self) -> float:
        assert self.clock is not None
        return self.clock.now(self.real_clock())

    def handlers(self) -> dict[str, Handler]:
        """How each kind of call to the outside is made (see outside.py)."""
        runtime, cloud = self.runtime, self.cloud

        def start(r: dict) -> dict:
            c = runtime.start(ContainerSpec(**{**r, "ports": tuple(r["ports"]), "host_ports": tuple(r["host_ports"])}))
            return {"ref": c.ref, "address": c.address, "ports": [list(p) for p in c.ports], "state": c.state}

        def remove(r: dict) -> dict:
            runtime.stop(r["host"], r["name"])
            runtime.remove(r["host"], r["name"])
            return {}

        def delete(r: dict) -> dict:
            try:
                _need(cloud).delete_instances([r["id"]])
            except CloudError as e:
                if e.code != "InvalidInstanceId.NotFound":  # already gone: what we wanted
                    raise
            return {}

        def renew(r: dict) -> dict:
            _need(cloud).renew_instances(r["ids"], r["months"], token=r["token"])
            return {}

        return {"container.start": start, "container.remove": remove, "instance.delete": delete,
                "instance.renew": renew}

    def _start_workers(self) -> None:
        """The queues that run beside the tick: ECS orders and host initialisation."""
        if self.cloud is not None:
            self.drainer = EcsDrainer(self.db, self.cloud, self.world, self.drain_settings,
                                      platform_now=self.platform_now, seed=self.world.seed, fence=self.lease.fenced)
            self.drainer.start()
        if self.init_backend is not None:
            self.writer = StatusWriter(self.db, self.lease.fenced, self.platform_now)
            self.init_runner = InitRunner(self.db, self.init_backend, self.writer, self.lease.fenced,
                                          batch=self.init_settings.batch, timeout_s=self.init_settings.timeout_s,
                                          target=init_target(self.world, self.init_settings))
            self.init_runner.recover()

    def _stop_workers(self) -> None:
        if self.drainer is not None:
            self.drainer.stop()
            self.drainer = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        self.init_runner = None

    def _load_state(self) -> None:
        self._version = get_meta("platform_version")
        self.state = PlatformState.load()

    # --- the tick -----------------------------------------------------------------------

    def tick(self) -> bool:
        """Advance the platform to now and record what happened. False when not active."""
        with self._lock:
            if not self.active:
                return False
            try:
                self._tick()
                self.last_error = None
                return True
            except LeaseLost:
                self._lost()
                return False
            except pw.PeeweeException as e:
                self._failed(e)
                return False

    def _tick(self) -> None:
        assert self.clock is not None
        real = self.real_clock()
        with self.lease.fenced():
            row = ClockRow.get_by_id(1)
            if row.speed != self.clock.speed or row.paused != self.clock.paused:
                self.clock.rebase(real, speed=row.speed, paused=row.paused)
            if get_meta("platform_version") != self._version:
                self._load_state()
            now = self.clock.now(real)
            self._schedules(self._last_t, now)
            changed = self._advance(now, force=self._force_next)
            self._force_next = False
            ClockRow.update(
                t=now, real_t=now_sql(self.db), tick=ClockRow.tick + (1 if changed else 0)
            ).where(ClockRow.id == 1).execute()

    def run_tasks(self) -> bool:
        """Carry the queued and running tasks forward (outside the tick: their calls to engines
        and the cloud may take a while). True when any moved."""
        if not self.active or self.runner is None:
            return False
        try:
            moved = self.runner.run()
        except LeaseLost:
            with self._lock:
                self._lost()
            return False
        except pw.PeeweeException as e:
            self._failed(e)
            return False
        if moved:
            self._force_next = True
        return moved

    def _lost(self) -> None:
        """The lease went to another engine: stop writing, stand by."""
        if not self.active:
            return
        self.active = False
        self._stop_workers()
        # Not even an event: the store is the new holder's now (it says "engine active on ...").
        log.warning("engine lease lost; standing by")

    def _advance(self, now: float, force: bool = False) -> bool:
        """Move the platform to `now`; `force` recomputes the numbers even when paused."""
        st = self.state
        assert st is not None
        last = self._last_t
        dt = now - last
        if dt <= 0 and self._ticks and not force:
            return False
        self._ticks += 1
        self._health(st, now, dt)
        extra = self._hot_events(now, last)
        live = load.compute(st.layout, st.alive, self.telemetry.service_qps(st.services, now, extra))
        LiveRow.insert_many([metric_row(s, now) for s in live]).on_conflict(
            conflict_target=[LiveRow.scope], preserve=LIVE_FIELDS).execute()
        self._samples(st, last, now, extra)
        if self._ticks % 600 == 0:
            self._prune(now)
        self._last_t = now
        return True

    def _health(self, st: PlatformState, now: float, dt: float) -> None:
        change = self.health.poll(st.alive, st.down_until, now, dt)
        if not len(change.down) and not len(change.up):
            st.down_until = change.down_until
            return
        st.alive[change.down] = False
        st.alive[change.up] = True
        st.down_until = change.down_until
        for i in change.down.tolist():
            HostRow.update(alive=False, down_until_t=float(st.down_until[i])).where(
                HostRow.id == int(st.host_ids[i])
            ).execute()
            h = st.hosts[i]
            mins = (st.down_until[i] - now) / 60
            journal.event(now, "warn", "host", h.name, f"host {h.name} ({h.idc}/{h.pool}) down; repair in ~{mins:.0f} min")
        if len(change.up):
            ids = [int(x) for x in st.host_ids[change.up]]
            HostRow.update(alive=True, down_until_t=None).where(HostRow.id.in_(ids)).execute()
            for i in change.up.tolist():
                h = st.hosts[i]
                journal.event(now, "info", "host", h.name, f"host {h.name} ({h.idc}/{h.pool}) back")

    def _schedules(self, last: float, now: float) -> None:
        """What the platform clock sets off: the day/night swaps, and prepaid hosts expiring."""
        if now <= last:
            return
        tz = self.world.traffic.tz
        for sw in self.world.swaps:
            for _ in crossings(last, now, sw.night_at, tz)[-1:]:
                self._queue("pool_move", f"swap:{sw.name}", {
                    "idc": sw.idc, "from_pool": sw.online_pool, "to_pool": sw.offline_pool, "count": sw.hosts,
                    "reason": sw.name, "stop_batch": False}, now)
            for _ in crossings(last, now, sw.day_at, tz)[-1:]:
                lent = self._lent(sw.name, sw.offline_pool)
                if lent:
                    self._queue("pool_move", f"swap:{sw.name}", {
                        "hosts": lent, "to_pool": sw.online_pool, "reason": sw.name, "stop_batch": True}, now)
        warn_until = now + self.expiry_warn_days * 86400
        alive = HostRow.released_t.is_null() & HostRow.expires_t.is_null(False)
        for h in HostRow.select().where(alive & (HostRow.expires_t <= warn_until) & (HostRow.expiry_warned == False)):  # noqa: E712
            days = max((h.expires_t - now) / 86400, 0)
            journal.event(now, "warn", "cost", h.name,
                          f"{h.charge_type} host {h.name} expires in {days:.1f} days: renew it or it is released")
            HostRow.update(expiry_warned=True).where(HostRow.id == h.id).execute()
        expired = [h.name for h in HostRow.select(HostRow.name).where(alive & (HostRow.expires_t <= now))]
        if not expired:
            return
        pending = {n for t in TaskRow.select().where((TaskRow.kind == "release")
                                                     & TaskRow.state.in_(("queued", "running")))
                   for n in t.spec["hosts"]}
        fresh = [n for n in expired if n not in pending]
        if fresh:
            self._queue("release", "engine:expiry", {"hosts": fresh, "reason": "expired, not renewed", "force": True}, now)

    def _lent(self, swap: str, offline_pool: str) -> list[str]:
        """Hosts the swap's last night move lent that are still in the offline pool."""
        last = (PoolMoveRow.select(pw.fn.MAX(PoolMoveRow.task))
                .where((PoolMoveRow.reason == swap) & (PoolMoveRow.to_pool == offline_pool)).scalar())
        if last is None:
            return []
        names = [m.host for m in PoolMoveRow.select().where(PoolMoveRow.task == last)]
        return [h.name for h in HostRow.select(HostRow.name).where(
            HostRow.name.in_(names) & (HostRow.pool == offline_pool) & HostRow.released_t.is_null())]

    def _queue(self, kind: str, actor: str, spec: dict, now: float) -> None:
        """A change the engine itself decides (a swap, an expiry): queued, and audited like a person's."""
        TaskRow.insert(kind=kind, state="queued", spec=spec, actor=actor, created_t=now, updated_t=now,
                       real_created=self.real_clock()).execute()
        journal.audit(user=actor, role="engine", action=kind, target=spec.get("to_pool") or kind,
                      details=spec, outcome="queued", platform_t=now)

    def _hot_events(self, now: float, last: float) -> list[HotEvent]:
        """Injected hot events still running; announce any event (world or injected) that starts or ends."""
        extra = []
        for task in TaskRow.select().where((TaskRow.kind == "hot_event") & (TaskRow.state == "running")):
            ev = hot_event_of(task.spec)
            if now > ev.start.timestamp() + ev.duration_min * 60:
                TaskRow.update(state="done", updated_t=now).where(TaskRow.id == task.id).execute()
            extra.append(ev)
        for ev in list(self.world.traffic.hot_events) + extra:
            start = ev.start.timestamp()
            end = start + ev.duration_min * 60
            if last < start <= now:
                services = ", ".join(ev.services)
                journal.event(start, "warn", "traffic", ev.name, f"hot event {ev.name}: {services} x{ev.factor:g} for {ev.duration_min} min")
            if last < end <= now:
                journal.event(end, "info", "traffic", ev.name, f"hot event {ev.name} over")
        return extra

    def _samples(self, st: PlatformState, last: float, now: float, extra: list[HotEvent]) -> None:
        first = int(last // SAMPLE_S) + 1
        final = int(now // SAMPLE_S)
        if final < first:
            return
        times = np.arange(max(first, final - MAX_SAMPLES_PER_TICK + 1), final + 1) * SAMPLE_S
        qps = traffic.service_qps(self.world.traffic, st.services, times, self.world.seed, extra)
        rows = []
        for k, t in enumerate(times.tolist()):
            rows.extend(metric_row(s, t) for s in load.compute(st.layout, st.alive, qps[:, k]))
        for i in range(0, len(rows), 500):
            MetricRow.insert_many(rows[i : i + 500]).on_conflict_ignore().execute()

    def _prune(self, now: float) -> None:
        MetricRow.delete().where(MetricRow.t < now - RETAIN_METRICS_S).execute()
        edge = EventRow.select(pw.fn.MAX(EventRow.id)).scalar() or 0
        EventRow.delete().where(EventRow.id <= edge - RETAIN_EVENTS).execute()

    def _failed(self, e: Exception) -> None:
        self.last_error = f"{type(e).__name__}: {e}"
        log.error("engine: %s", self.last_error)

    # --- scheduling ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run on an asyncio loop (Textual's, or `cockpit engine`'s): lease upkeep and ticks."""
        # A skipped tick is expected when the store is slow; the header shows staleness instead.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        sched = AsyncIOScheduler(event_loop=loop or asyncio.get_running_loop(), timezone=timezone.utc)
        first = datetime.now(timezone.utc)
        sched.add_job(self._job_lease, "interval", seconds=min(POLL_S, self.lease.ttl / 4), id="lease",
                      max_instances=1, coalesce=True, next_run_time=first)
        sched.add_job(self._job_tick, "interval", seconds=self.tick_s, id="tick",
                      max_instances=1, coalesce=True, next_run_time=first)
        sched.add_job(self._job_tasks, "interval", seconds=self.tick_s, id="tasks",
                      max_instances=1, coalesce=True, next_run_time=first)
        # The queues work in their own threads; these jobs only nudge them to look for new work.
        sched.add_job(self._job_queues, "interval", seconds=1.0, id="queues",
                      max_instances=1, coalesce=True, next_run_time=first)
        sched.start()
        self._scheduler = sched

    async def _job_lease(self) -> None:
        await asyncio.to_thread(self.step_lease)

    async def _job_tick(self) -> None:
        await asyncio.to_thread(self.tick)

    async def _job_tasks(self) -> None:
        await asyncio.to_thread(self.run_tasks)

    async def _job_queues(self) -> None:
        if self.drainer is not None:
            self.drainer.kick()
        if self.init_runner is not None:
            try:
                await asyncio.to_thread(self.init_runner.kick)
            except pw.PeeweeException as e:
                self._failed(e)

    def stop(self) -> None:
        """Stop ticking and hand the lease back."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        with self._lock:
            self._stop_workers()
            if self.active:
                self.active = False
                try:
                    with self.lease.fenced():
                        journal.event(self._last_t, "info", "engine", "engine", "engine stopped; lease handed back")
                        self.lease.release()
                except LeaseLost:
                    pass  # another engine has it already
                except pw.PeeweeException as e:  # the lease then lapses by itself
                    log.error("engine: could not release lease: %s", e)


def _need(cloud: Cloud | None) -> Cloud:
    if cloud is None:
        raise CloudError("NoCloud", "no cloud backend is configured")
    return cloud


def sim_runtime() -> ContainerRuntime:
    """The simulated runtime, told of the containers the store says run: an engine that takes
    over a running platform can stop and remove them."""
    from cockpit.backends.base import ContainerInfo
    from cockpit.backends.sim.containers import SimContainers

    hosts = dict(HostRow.select(HostRow.id, HostRow.name).tuples())
    q = ContainerRow.select(ContainerRow.name, ContainerRow.host, ContainerRow.service, ContainerRow.ref,
                            ContainerRow.address, ContainerRow.ports).where(ContainerRow.state != "starting")
    return SimContainers(
        ContainerInfo(name, hosts.get(host, "?"), service, ref or name, "running", address,
                      tuple(tuple(p) for p in ports or []))
        for name, host, service, ref, address, ports in q.tuples()
    )


def hot_event_of(spec: dict) -> HotEvent:
    return HotEvent(
        name=spec["name"],
        start=datetime.fromtimestamp(spec["start_t"], timezone.utc),
        duration_min=int(spec["duration_min"]),
        factor=float(spec["factor"]),
        services=tuple(spec["services"]),
    )
