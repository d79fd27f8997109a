"""A day of traffic to replay: each service's QPS per step for the day, and the week before it
(what the `predict` rules look back on). The demo trace is the world's daily curve with both peaks
and one hot event at three times normal traffic, at a minute the seed chooses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time

import numpy as np

from cockpit.core.traffic import service_qps
from cockpit.domain import HotEvent, World

DAY_S = 86400
PAST_DAYS = 7
HOT_FACTOR = 3.0
HOT_MINUTES = 90


@dataclass(frozen=True)
class Trace:
    start: float  # the day's first instant (epoch seconds)
    step_s: int
    services: tuple[str, ...]
    qps: np.ndarray  # (services, steps of the day)
    past: np.ndarray  # (services, steps of the PAST_DAYS before it)
    hot: tuple[HotEvent, ...] = ()

    @property
    def steps(self) -> int:
        return self.qps.shape[1]

    def at(self, service: int, t: float, now: float) -> float | None:
        """QPS of a service at `t`, as known at `now` (nothing of the future); None outside the trace."""
        if t > now:
            return None
        i = math.floor((t - self.start) / self.step_s)
        if 0 <= i < self.steps:
            return float(self.qps[service, i])
        j = i + self.past.shape[1]
        if not 0 <= j < self.past.shape[1]:
            return None
        v = float(self.past[service, j])
        return None if math.isnan(v) else v  # a trace file may give less than a week

    def hot_at(self, service: str, t: float) -> tuple[tuple[str, float], ...]:
        return tuple((e.name, e.start.timestamp()) for e in self.hot if service in e.services
                     and e.start.timestamp() <= t < e.start.timestamp() + e.duration_min * 60)


def day_start(world: World) -> float:
    """Local midnight of the world's first day."""
    tz = world.traffic.tz
    d = world.start.astimezone(tz).date()
    return datetime.combine(d, time(0, 0), tzinfo=tz).timestamp()


def hot_event(world: World, seed: int, start: float) -> HotEvent:
    """Three times normal traffic for the online services, from a minute between 09:00 and 23:00
    local time that the seed chooses."""
    minute = int(np.random.default_rng(seed).integers(9 * 60, 23 * 60))
    online = tuple(s.name for s in world.services if s.kind != "batch")
    return HotEvent(f"hot-{seed}", datetime.fromtimestamp(start + minute * 60, world.traffic.tz), HOT_MINUTES,
                    HOT_FACTOR, online)


def demo_trace(world: World, seed: int, step_s: int = 60) -> Trace:
    """The world's daily curve (its own hot events left out) for a week and a day, with the seed's
    noise, and the seed's hot event on the last day."""
    start = day_start(world)
    curve = world.traffic.__class__(world.traffic.utc_offset, world.traffic.night_floor, world.traffic.day_level,
                                     world.traffic.peaks, ())
    ev = hot_event(world, seed, start)
    steps = DAY_S // step_s
    t_day = start + np.arange(steps) * step_s
    t_past = start - PAST_DAYS * DAY_S + np.arange(PAST_DAYS * steps) * step_s
    qps = service_qps(curve, world.services, t_day, seed, (ev,))
    past = service_qps(curve, world.services, t_past, seed)
    return Trace(start, step_s, tuple(s.name for s in world.services), qps, past, (ev,))


def describe(trace: Trace, tz) -> str:
    hot = "; ".join(f"{e.name} x{e.factor:g} at {e.start.astimezone(tz):%H:%M} for {e.duration_min} min" for e in trace.hot)
    day = datetime.fromtimestamp(trace.start, tz)
    return f"{day:%Y-%m-%d} ({trace.steps} steps of {trace.step_s} s)" + (f"; {hot}" if hot else "")
