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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import peewee as pw
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from cockpit.backends.base import (
    Cloud,
    CloudError,
    ContainerRuntime,
    ContainerSpec,
    HostHealth,
    HostInit,
    Registry,
    Telemetry,
)
from cockpit.backends.factory import InitSettings, init_target
from cockpit.backends.sim.clock import SimClock
from cockpit.backends.sim.platform import SimHostHealth, SimTelemetry
from cockpit.core.schedule import crossings
from cockpit.domain import World
from cockpit.engine import health, journal, step
from cockpit.engine.ecs import DrainSettings, EcsDrainer
from cockpit.engine.init import InitRunner, StatusWriter
from cockpit.engine.lease import POLL_S, TTL_S, Lease, LeaseLost
from cockpit.engine.outside import Handler
from cockpit.engine.autoscale_jobs import AutoscaleJobs
from cockpit.engine.flow_jobs import FlowJobs
from cockpit.engine.replication import Replicator
from cockpit.engine.replication_jobs import ReplicationJobs
from cockpit.engine.webhook import WebhookServer
from cockpit.engine.state import PlatformState
from cockpit.engine.tasks import Runner
from cockpit.engine.health import Health
from cockpit.store.db import describe_for, get_meta, now_sql
from cockpit.store.models import ClockRow, ContainerRow, EventRow, HostRow, MetricRow, PoolMoveRow, TaskRow

log = logging.getLogger(__name__)

RETAIN_METRICS_S = 8 * 86400.0
RETAIN_EVENTS = 20_000
REQUESTS_POLL_S = 0.25  # how often the active engine looks for requests (a person is waiting)


class Engine(AutoscaleJobs, ReplicationJobs, FlowJobs):
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
        registries: dict[str, Registry] | None = None,
        registry_settings: dict | None = None,
        autoscaling: bool = True,
        spool_dir: str | None = None,
        discovery=None,
        ready_checks: bool = False,
        manager_ttl_s: float = 4.0,
        front=None,
    ):
        self.db = db
        self.world = world
        self.tick_s = tick_s
        self.real_clock = real_clock
        self.lease = Lease(db, ttl=lease_ttl or TTL_S, clock=lease_clock)
        self.telemetry = telemetry or SimTelemetry(world)
        self.health = health or SimHostHealth(world)
        self.runtime = runtime
        self._own_runtime = runtime is None
        self.cloud = cloud
        self.drain_settings = drain or DrainSettings()
        self.init_backend = init
        self.init_settings = init_settings or InitSettings()
        self.expiry_warn_days = expiry_warn_days
        self.registries = registries
        self._own_registries = registries is None
        self.registry_settings = registry_settings or {}
        self.autoscaling = autoscaling
        self.spool_dir = spool_dir
        self.discovery = discovery  # None: the simulated store, made when the engine starts
        self.ready_checks = ready_checks  # a new container counts once it answers (a real runtime)
        self.manager_ttl_s = manager_ttl_s
        self.front = front  # the front door (nginx) that follows discovery, if any
        self.speed_override = speed
        self.backend_health = Health(real_clock)  # how each backend last answered (engine/health.py)
        self.store_name = str(getattr(db, "database", "") or "store")
        self._kinds = {sv.name: sv.kind for sv in world.services}
        self._no_parts_yet()
        self._not_running_yet()

    def _no_parts_yet(self) -> None:
        """The moving parts, made when the engine becomes active (and stopped when it stops)."""
        self.managers = None
        self.flows = None
        self.engine_watch = None  # real engines: pinged and sampled beside the tick
        self.desk = None  # a RequestDesk: actions asked by Cockpits that may not write (engine/requests.py)
        self.upstream_sync = None
        self.replicator: Replicator | None = None
        self.webhook: WebhookServer | None = None
        self.drainer: EcsDrainer | None = None
        self.writer: StatusWriter | None = None
        self.init_runner: InitRunner | None = None
        self.runner: Runner | None = None

    def _not_running_yet(self) -> None:
        """Its own state: the platform as loaded, the clock, the tick's bookkeeping, its thread."""
        self._idc_of: dict[str, str] = {}  # host -> IDC, for RPC instances (filled when the state loads)
        self._sim_lock = threading.Lock()
        self._sim_stop = threading.Event()  # set while the workers stop: simulated transfers end
        self._sim_t = 0.0
        self._sim_last = time.monotonic()
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
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- becoming active ----------------------------------------------------------------

    def step_lease(self) -> bool:
        """Active: the heartbeat. Standby: take the lease when it is free. Whether this engine is active."""
        from cockpit.store.models import proxy

        if proxy.obj is not self.db:  # the models point at another store now: never take a lease there
            return False
        if self.active:  # no engine lock: a long tick must not hold up the heartbeat
            try:
                with self.lease.fenced():
                    pass
            except LeaseLost:
                with self._lock:
                    self._lost()
            except pw.PeeweeException as e:
                self._failed(e)
            return self.active
        with self._lock:
            try:
                if self.lease.acquire():
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
        # A big platform takes a while to load and recover, and the lease job waits for this
        # activation to end: beat from another thread meanwhile.
        with self._keep_lease():
            self._load_state()
            if self._own_runtime:  # the simulated engines, as the store says they are now
                self.runtime = sim_runtime()
            elif hasattr(self.runtime, "probe"):  # real engines: their answers are the hosts' health
                self._watch_engines()
            self.runner = Runner(self.lease.fenced, self.handlers(), self.platform_now, self.real_clock, self.world,
                                 random.Random(self.world.seed))
            self.runner.recover()
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
            self._discover(r["service"], c, True)  # tasks' containers serve like flows' do
            return {"ref": c.ref, "address": c.address, "ports": [list(p) for p in c.ports], "state": c.state}

        def remove(r: dict) -> dict:
            c = runtime.inspect(r["host"], r["name"])
            if c is not None:
                self._discover(c.service, c, False)  # out of discovery before it stops
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

    def _discover(self, service: str, c, serving: bool) -> None:
        """A container that a task (not a flow) started or is about to stop, in or out of discovery.
        Raises DiscoveryError (the call is then tried again, under its key)."""
        from cockpit.backends.discovery import Member, RpcInstance

        kind = self._kinds.get(service)
        if self.discovery is None or not c.address or not c.ports or kind not in ("http", "rpc"):
            return
        port = int(c.ports[0][1])
        if kind == "http":
            if serving:
                self.discovery.set_member(service, Member(c.address, port))
            else:
                self.discovery.remove_member(service, c.address, port)
        elif serving:
            idc = self._idc_of.get(c.host, "")
            self.discovery.register(RpcInstance(service, idc, c.name, c.address, port, (f"idc:{idc}",)))
        else:
            self.discovery.deregister(service, c.name)

    def _start_workers(self) -> None:
        """The queues that run beside the tick: ECS orders, host initialisation, replication."""
        self._start_replication()
        self._start_flows()
        if self.cloud is not None:
            self.drainer = EcsDrainer(self.db, self.cloud, self.world, self.drain_settings,
                                      platform_now=self.platform_now, seed=self.world.seed, fence=self.lease.fenced,
                                      health=self.backend_health)
            self.drainer.start()
        if self.init_backend is not None:
            self.writer = StatusWriter(self.db, self.lease.fenced, self.platform_now)
            self.init_runner = InitRunner(self.db, self.init_backend, self.writer, self.lease.fenced,
                                          batch=self.init_settings.batch, timeout_s=self.init_settings.timeout_s,
                                          target=init_target(self.world, self.init_settings))
            self.init_runner.recover()

    def _stop_workers(self) -> None:
        self._sim_stop.set()
        self._stop_flows()
        if self.engine_watch is not None:
            self.engine_watch.stop()
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
        if self.replicator is not None:
            self.replicator.stop()
            self.replicator = None
        if self.drainer is not None:
            self.drainer.stop()
            self.drainer = None
        if self.init_runner is not None:
            self.init_runner.stop()
            self.init_runner = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None

    def _watch_engines(self) -> None:
        from cockpit.engine.engine_watch import EngineHealth, EngineWatch

        if self.engine_watch is None:
            names = lambda: [h.name for h in self.state.hosts]  # noqa: E731 - the state's order, as it is now
            self.engine_watch = EngineWatch(self.runtime, names, health=self.backend_health)
            self.health = EngineHealth(self.engine_watch, names)
        self.engine_watch.start()

    def _load_state(self) -> None:
        self._version = get_meta("platform_version")
        self.state = PlatformState.load()
        self._idc_of = {h.name: h.idc for h in self.state.hosts}

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
        """Observe outside any transaction, then write in one fenced transaction."""
        assert self.clock is not None
        real = self.real_clock()
        row = ClockRow.get_by_id(1)
        self.backend_health.ok("store", self.store_name)  # it answered: written with this tick
        if row.speed != self.clock.speed or row.paused != self.clock.paused:
            self.clock.rebase(real, speed=row.speed, paused=row.paused)
        if get_meta("platform_version") != self._version:
            with self._keep_lease():
                self._load_state()
        now = self.clock.now(real)
        observed = None
        if now > self._last_t or not self._ticks or self._force_next:
            assert self.state is not None
            watch = self.engine_watch
            observed = step.observe(self.state, self.world, self.health, self.telemetry, self._last_t, now,
                                    step.running_hot_events(), watch.cpu_by_host() if watch else None)
        said = self.backend_health.take_changed()
        try:
            with self.lease.fenced():
                self._schedules(self._last_t, now)
                if observed is not None:
                    step.write(observed)
                    if (self._ticks + 1) % 600 == 0:
                        self._prune(now)
                ClockRow.update(
                    t=now, real_t=now_sql(self.db), tick=ClockRow.tick + (1 if observed is not None else 0)
                ).where(ClockRow.id == 1).execute()
                health.write(said)
        except BaseException:
            self.backend_health.unflushed(said)
            raise
        if observed is not None:
            self._ticks += 1
            self._last_t = now
        self._force_next = False

    @contextmanager
    def _keep_lease(self) -> Iterator[None]:
        """While a long step runs outside a transaction (loading a big platform), renew the lease
        from another thread, so the step does not outlast it."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(min(POLL_S, self.lease.ttl / 3)):
                try:
                    with self.lease.fenced():
                        pass
                except (LeaseLost, pw.PeeweeException):
                    return

        t = threading.Thread(target=beat, name="lease-keeper", daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join()

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

    def answer_requests(self) -> int:
        """Do what Cockpits that may not write asked, as the people who asked (engine/requests.py)."""
        if not self.active or self.desk is None:
            return 0
        try:
            n = self.desk.run()
        except LeaseLost:
            with self._lock:
                self._lost()
            return 0
        except pw.PeeweeException as e:
            self._failed(e)
            return 0
        if n:
            self._force_next = True
        return n

    def _lost(self) -> None:
        """The lease went to another engine: stop writing, stand by."""
        if not self.active:
            return
        self.active = False
        self._stop_workers()
        # Not even an event: the store is the new holder's now (it says "engine active on ...").
        log.warning("engine lease lost; standing by")

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
        journal.engine_audit(action=kind, target=spec.get("to_pool") or kind, details={**spec, "by": actor},
                             outcome="queued", platform_t=now)

    def _prune(self, now: float) -> None:
        MetricRow.delete().where(MetricRow.t < now - RETAIN_METRICS_S).execute()
        edge = EventRow.select(pw.fn.MAX(EventRow.id)).scalar() or 0
        EventRow.delete().where(EventRow.id <= edge - RETAIN_EVENTS).execute()

    def _failed(self, e: Exception) -> None:
        self.last_error = f"{type(e).__name__}: {e}"
        if isinstance(e, pw.PeeweeException):
            self.backend_health.failed("store", self.store_name, describe_for(e, self.db))
        log.error("engine: %s", self.last_error)

    # --- scheduling ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run on an asyncio loop (`cockpit engine`'s), or with none given on a loop of its own in
        its own thread: inside the TUI, nothing the screen does can hold up a tick."""
        if loop is None:
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run_own_loop, args=(ready,), name="engine", daemon=True)
            self._thread.start()
            ready.wait()
            return
        self._schedule(loop)

    def _run_own_loop(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._schedule(loop)
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Lease upkeep, ticks, tasks and the queues' nudges, as APScheduler jobs on `loop`."""
        # A skipped tick is expected when the store is slow; the header shows staleness instead.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        sched = AsyncIOScheduler(event_loop=loop, timezone=timezone.utc)
        first = datetime.now(timezone.utc)
        sched.add_job(self._job_lease, "interval", seconds=min(POLL_S, self.lease.ttl / 4), id="lease",
                      max_instances=1, coalesce=True, next_run_time=first)
        sched.add_job(self._job_tick, "interval", seconds=self.tick_s, id="tick",
                      max_instances=1, coalesce=True, next_run_time=first)
        sched.add_job(self._job_tasks, "interval", seconds=self.tick_s, id="tasks",
                      max_instances=1, coalesce=True, next_run_time=first)
        # The rules' metrics: looked at every tick, evaluated every `scaling.interval_s` of platform time.
        sched.add_job(self._job_autoscale, "interval", seconds=self.tick_s, id="autoscale",
                      max_instances=1, coalesce=True, next_run_time=first)
        for p in self.world.replication:  # cron triggers, in the world's time zone
            if p.trigger == "cron":
                sched.add_job(self._job_cron, CronTrigger.from_crontab(p.schedule, timezone=self.world.traffic.tz),
                              args=[p.name], id=f"cron:{p.name}", max_instances=1, coalesce=True)
        sched.add_job(self._job_requests, "interval", seconds=REQUESTS_POLL_S, id="requests",
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

    async def _job_requests(self) -> None:
        await asyncio.to_thread(self.answer_requests)

    async def _job_queues(self) -> None:
        if self.drainer is not None:
            self.drainer.kick()
        runner = self.init_runner
        if runner is not None:
            try:
                await asyncio.to_thread(runner.kick)
            except LeaseLost:
                with self._lock:
                    self._lost()
            except pw.PeeweeException as e:
                self._failed(e)

    def stop(self) -> None:
        """Stop ticking and hand the lease back."""
        # Jobs still running when their loop ends are cancelled: that is the stop, not an error.
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
        if self._thread is not None and self._loop is not None:
            sched, loop = self._scheduler, self._loop
            if sched is not None:
                loop.call_soon_threadsafe(sched.shutdown, False)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=5)
            self._thread = self._loop = self._scheduler = None
        elif self._scheduler is not None:
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
    from sys import intern

    from cockpit.backends.base import ContainerInfo
    from cockpit.backends.sim.containers import SimContainers

    hosts = dict(HostRow.select(HostRow.id, HostRow.name).tuples())
    q = ContainerRow.select(ContainerRow.name, ContainerRow.host, ContainerRow.service, ContainerRow.ref,
                            ContainerRow.address, ContainerRow.ports).where(ContainerRow.state != "starting")
    # 200,000 rows: read from the cursor as they are and decode each distinct ports text once
    # (host ports are counted from the same base on every host: 50 texts on a 20,000-host
    # world); services and addresses repeat, so they are interned, and the ports tuples are
    # shared (they are never changed).
    decode = ContainerRow.ports.python_value  # a damaged value: StoreError, as the model says
    ports_of: dict[str | None, tuple[tuple[int, int], ...]] = {}

    def info(name: str, host: int, service: str, ref: str | None, address: str | None,
             text: str | None) -> ContainerInfo:
        ports = ports_of.get(text)
        if ports is None:
            ports = ports_of[text] = tuple(tuple(p) for p in decode(text) or [])
        return ContainerInfo(name, hosts.get(host, "?"), intern(service), ref or name, "running",
                             intern(address) if address else address, ports)

    return SimContainers(info(*row) for row in ContainerRow._meta.database.execute(q).fetchall())
