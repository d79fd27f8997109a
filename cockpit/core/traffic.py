"""Traffic on a daily curve: quiet at night, a working-day plateau, peaks (12:30, 22:30), hot events.

Pure functions of platform time, vectorised over time so a history of hours costs one call.
Online services follow the curve; batch jobs follow its mirror (they fill the night).
"""

from __future__ import annotations

import zlib

import numpy as np

from cockpit.domain import HotEvent, Service, TrafficCurve

_DAY = 86400.0


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def local_hours(curve: TrafficCurve, t: np.ndarray) -> np.ndarray:
    """Epoch seconds -> local hour of day in [0, 24)."""
    return ((t + curve.utc_offset.total_seconds()) % _DAY) / 3600.0


def level(curve: TrafficCurve, hour: np.ndarray) -> np.ndarray:
    """Traffic as a share of the daily maximum, by local hour."""
    x = (hour - 4.0) % 24.0  # hours since the quietest time
    daytime = _sigmoid((x - 4.0) / 0.8) * _sigmoid((21.0 - x) / 0.8)  # up by 08:00, down by 01:00
    base = curve.night_floor + (curve.day_level - curve.night_floor) * daytime
    out = base
    for p in curve.peaks:
        d = ((hour - p.at_hour + 12.0) % 24.0) - 12.0
        px = (p.at_hour - 4.0) % 24.0
        base_at_peak = curve.night_floor + (curve.day_level - curve.night_floor) * float(
            _sigmoid((px - 4.0) / 0.8) * _sigmoid((21.0 - px) / 0.8)
        )
        out = out + max(p.height - base_at_peak, 0.0) * np.exp(-(d * d) / (2 * p.width_h * p.width_h))
    return out


def hot_multiplier(events: tuple[HotEvent, ...] | list[HotEvent], service: str, t: np.ndarray) -> np.ndarray:
    """How much hot events multiply a service's traffic: up over 10 minutes, down over 20."""
    mult = np.ones_like(t, dtype=float)
    for ev in events:
        if service not in ev.services:
            continue
        start = ev.start.timestamp()
        end = start + ev.duration_min * 60.0
        ramp_up = np.clip((t - start) / 600.0, 0.0, 1.0)
        ramp_down = np.clip((end - t) / 1200.0, 0.0, 1.0)
        env = np.minimum(ramp_up, ramp_down) * ((t >= start) & (t <= end))
        mult = mult * (1.0 + (ev.factor - 1.0) * env)
    return mult


def noise(seed: int, name: str, t: np.ndarray) -> np.ndarray:
    """A smooth, deterministic wobble of a few percent: a sum of sines with phases seeded by the
    world and the service's name (not its position, which differs between callers)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    periods = np.array([37.0, 11.0, 3.0]) * 60.0
    amps = np.array([0.03, 0.015, 0.007])
    phases = rng.random(3) * 2 * np.pi
    t = np.asarray(t, dtype=float)
    return 1.0 + sum(a * np.sin(2 * np.pi * t / p + ph) for a, p, ph in zip(amps, periods, phases))


def service_qps(
    curve: TrafficCurve,
    services: tuple[Service, ...] | list[Service],
    t: np.ndarray | float,
    seed: int,
    extra_events: tuple[HotEvent, ...] | list[HotEvent] = (),
) -> np.ndarray:
    """QPS of every service at every time: shape (services, times), or (services,) for a scalar t."""
    scalar = np.ndim(t) == 0
    tt = np.atleast_1d(np.asarray(t, dtype=float))
    lv = level(curve, local_hours(curve, tt))
    events = tuple(curve.hot_events) + tuple(extra_events)
    out = np.empty((len(services), len(tt)))
    for i, s in enumerate(services):
        shape = np.clip(1.05 - lv, 0.1, 1.0) if s.kind == "batch" else lv
        out[i] = s.traffic.peak_qps * shape * noise(seed, s.name, tt) * hot_multiplier(events, s.name, tt)
    return out[:, 0] if scalar else out


