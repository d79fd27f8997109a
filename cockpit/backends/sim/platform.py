"""The simulated platform's telemetry and host health, from the world's traffic model."""

from __future__ import annotations

import numpy as np

from cockpit.core import failures, traffic
from cockpit.core.failures import FailureModel, HealthChange
from cockpit.domain import HotEvent, Service, World


class SimTelemetry:
    def __init__(self, world: World):
        self.world = world

    def service_qps(self, services: list[Service], now: float, extra_events: list[HotEvent]) -> np.ndarray:
        return traffic.service_qps(self.world.traffic, services, now, self.world.seed, extra_events)


class SimHostHealth:
    """Hosts fail at random and are repaired after a while; seeded by world and time, so replayable."""

    def __init__(self, world: World, model: FailureModel | None = None):
        self.seed = world.seed
        self.model = model or FailureModel()

    def poll(self, alive: np.ndarray, down_until: np.ndarray, now: float, dt: float) -> HealthChange:
        rng = np.random.default_rng([self.seed, int(now)])
        return failures.step(alive, down_until, now, dt, self.model, rng)
