"""One tick of the platform, in two halves: what happened is observed first, outside any
transaction (host health and telemetry are backends: a real one is a call to the outside), then
written in the engine's fenced transaction in one go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from cockpit.backends.base import HostHealth, Telemetry
from cockpit.core import load, traffic
from cockpit.domain import HotEvent, World
from cockpit.engine import journal
from cockpit.engine.seed import SAMPLE_S, metric_row
from cockpit.engine.state import PlatformState
from cockpit.store.models import HostRow, LiveRow, MetricRow, TaskRow

MAX_SAMPLES_PER_TICK = 360
LIVE_FIELDS = [LiveRow.t, LiveRow.hosts_alive, LiveRow.hosts_total, LiveRow.containers, LiveRow.cpu_pct,
               LiveRow.alloc_pct, LiveRow.qps]


@dataclass
class Step:
    now: float
    down: list[tuple[int, float]] = field(default_factory=list)  # (host id, down until)
    up: list[int] = field(default_factory=list)  # host ids
    events: list[tuple[float, str, str, str, str]] = field(default_factory=list)  # (t, level, kind, scope, text)
    finished_hot: list[int] = field(default_factory=list)  # hot-event tasks that ended
    live: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)


def hot_event_of(spec: dict) -> HotEvent:
    return HotEvent(
        name=spec["name"],
        start=datetime.fromtimestamp(spec["start_t"], timezone.utc),
        duration_min=int(spec["duration_min"]),
        factor=float(spec["factor"]),
        services=tuple(spec["services"]),
    )


def running_hot_events() -> list[tuple[int, HotEvent]]:
    """Hot events injected by hand that have not been marked over (a read, before the tick)."""
    return [(t.id, hot_event_of(t.spec)) for t in
            TaskRow.select().where((TaskRow.kind == "hot_event") & (TaskRow.state == "running"))]


def observe(st: PlatformState, world: World, health: HostHealth, telemetry: Telemetry,
            last: float, now: float, injected: list[tuple[int, HotEvent]],
            cores_used: dict[str, float] | None = None) -> Step:
    """Move the in-memory platform from `last` to `now` and say what must be written.
    `cores_used`: CPU in use per host measured on real engines (the dashboard shows it)."""
    step = Step(now)
    _health(step, st, health, now, now - last)
    extra = _hot_events(step, world, injected, last, now)
    usable = st.alive & st.ready
    live = load.compute(st.layout, usable, telemetry.service_qps(st.services, now, extra))
    if cores_used is not None:
        from cockpit.engine.engine_watch import scope_cpu

        live = scope_cpu(live, st.hosts, usable, cores_used)
    step.live = [metric_row(s, now) for s in live]
    first, final = int(last // SAMPLE_S) + 1, int(now // SAMPLE_S)
    if final >= first:
        times = np.arange(max(first, final - MAX_SAMPLES_PER_TICK + 1), final + 1) * SAMPLE_S
        qps = traffic.service_qps(world.traffic, st.services, times, world.seed, extra)
        for k, t in enumerate(times.tolist()):
            step.samples.extend(metric_row(s, t) for s in load.compute(st.layout, usable, qps[:, k]))
    return step


def _health(step: Step, st: PlatformState, health: HostHealth, now: float, dt: float) -> None:
    change = health.poll(st.alive, st.down_until, now, dt)
    st.alive[change.down] = False
    st.alive[change.up] = True
    st.down_until = change.down_until
    for i in change.down.tolist():
        h = st.hosts[i]
        step.down.append((int(st.host_ids[i]), float(st.down_until[i])))
        mins = (st.down_until[i] - now) / 60
        why = change.reasons.get(i)
        step.events.append((now, "warn", "host", h.name, f"host {h.name} ({h.idc}/{h.pool}) down: {why}" if why
                            else f"host {h.name} ({h.idc}/{h.pool}) down; repair in ~{mins:.0f} min"))
    for i in change.up.tolist():
        h = st.hosts[i]
        step.up.append(int(st.host_ids[i]))
        step.events.append((now, "info", "host", h.name, f"host {h.name} ({h.idc}/{h.pool}) back"))


def _hot_events(step: Step, world: World, injected: list[tuple[int, HotEvent]], last: float, now: float) -> list[HotEvent]:
    """The injected hot events still running; every event (world or injected) that starts or ends is said."""
    extra = []
    for task_id, ev in injected:
        if now > ev.start.timestamp() + ev.duration_min * 60:
            step.finished_hot.append(task_id)
        extra.append(ev)
    for ev in list(world.traffic.hot_events) + extra:
        start = ev.start.timestamp()
        end = start + ev.duration_min * 60
        if last < start <= now:
            services = ", ".join(ev.services)
            step.events.append((start, "warn", "traffic", ev.name,
                                f"hot event {ev.name}: {services} x{ev.factor:g} for {ev.duration_min} min"))
        if last < end <= now:
            step.events.append((end, "info", "traffic", ev.name, f"hot event {ev.name} over"))
    return extra


def write(step: Step) -> None:
    """In the engine's fenced transaction: all of the step, or (when the lease is gone) none."""
    for host_id, until in step.down:
        HostRow.update(alive=False, down_until_t=until).where(HostRow.id == host_id).execute()
    if step.up:
        HostRow.update(alive=True, down_until_t=None).where(HostRow.id.in_(step.up)).execute()
    if step.finished_hot:
        TaskRow.update(state="done", updated_t=step.now).where(TaskRow.id.in_(step.finished_hot)).execute()
    for t, level, kind, scope, text in step.events:
        journal.event(t, level, kind, scope, text)
    LiveRow.insert_many(step.live).on_conflict(conflict_target=[LiveRow.scope], preserve=LIVE_FIELDS).execute()
    for i in range(0, len(step.samples), 500):
        MetricRow.insert_many(step.samples[i : i + 500]).on_conflict_ignore().execute()
