"""Hosts that occasionally fail and come back: a Poisson failure rate and a repair time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FailureModel:
    per_host_hour: float = 0.0016  # about 3 failures an hour across 2,000 hosts
    repair_min: tuple[float, float] = (20.0, 90.0)


@dataclass(frozen=True)
class HealthChange:
    down: np.ndarray  # host indices that failed
    up: np.ndarray  # host indices that came back
    down_until: np.ndarray  # new repair deadlines (epoch s; nan while alive)
    reasons: dict[int, str] = field(default_factory=dict)  # why a host went down, when known (a real engine)


def step(
    alive: np.ndarray,
    down_until: np.ndarray,
    now: float,
    dt: float,
    model: FailureModel,
    rng: np.random.Generator,
) -> HealthChange:
    """Which hosts fail and which recover during the `dt` seconds ending at `now`."""
    with np.errstate(invalid="ignore"):
        back = ~alive & (down_until <= now)
    p = 1.0 - np.exp(-model.per_host_hour * max(dt, 0.0) / 3600.0)
    fail = alive & (rng.random(len(alive)) < p)
    lo, hi = model.repair_min
    until = down_until.copy()
    until[back] = np.nan
    until[fail] = now + rng.uniform(lo, hi, int(fail.sum())) * 60.0
    return HealthChange(np.flatnonzero(fail), np.flatnonzero(back), until)
