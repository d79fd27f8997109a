"""The Protocols every backend implements; the simulated twin implements the same ones.

The engine talks only to these. A real backend and its sim twin pass one contract suite.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cockpit.core.failures import HealthChange
from cockpit.domain import HotEvent, Service


class PlatformClock(Protocol):
    """Platform time. Real deployments use the wall clock; the simulation may run faster."""

    speed: float
    paused: bool

    def now(self, real: float) -> float: ...

    def rebase(self, real: float, *, speed: float | None = None, paused: bool | None = None) -> None: ...


class Telemetry(Protocol):
    """What the services are being asked to do right now."""

    def service_qps(self, services: list[Service], now: float, extra_events: list[HotEvent]) -> np.ndarray: ...


class HostHealth(Protocol):
    """Which hosts failed or came back since the last poll."""

    def poll(self, alive: np.ndarray, down_until: np.ndarray, now: float, dt: float) -> HealthChange: ...


class ContainerRuntime(Protocol):
    """Starts containers on hosts (Docker Engine on each host, or the simulation)."""

    def start(self, host: str, service: str, image: str, count: int) -> list[str]:
        """Start `count` containers of `image` on `host`; the ids of those that started."""
        ...
