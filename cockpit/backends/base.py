"""The Protocols every backend implements; the simulated twin implements the same ones.

The engine talks only to these. A real backend and its sim twin pass one contract suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cockpit.domain import HotEvent, Service

if TYPE_CHECKING:  # for annotations only: importing this module must stay cheap
    import numpy as np

    from cockpit.core.failures import HealthChange


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


@dataclass(frozen=True)
class RunRequest:
    """One RunInstances call, with every parameter that must be repeated on a retry."""

    region: str
    zone: str
    vswitch: str
    security_group: str
    instance_type: str
    image_id: str
    amount: int
    min_amount: int
    client_token: str
    charge_type: str = "PostPaid"  # or PrePaid
    period: int | None = None
    period_unit: str | None = None  # Month | Week


@dataclass(frozen=True)
class RunResult:
    instance_ids: list[str]
    request_id: str


@dataclass(frozen=True)
class Instance:
    id: str
    zone: str
    instance_type: str
    status: str


class CloudError(Exception):
    """An error answer from the cloud API (or the transport, code SDK.HttpError)."""

    def __init__(self, code: str, message: str, http_status: int | None = None, request_id: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_id = request_id


class Cloud(Protocol):
    """Cloud hosts: Aliyun ECS (backends/aliyun.py) or the simulated cloud (backends/sim/cloud.py)."""

    def run_instances(self, req: RunRequest) -> RunResult: ...

    def describe_instances(self, ids: list[str]) -> list[Instance]: ...

    def delete_instances(self, ids: list[str]) -> None: ...

    def renew_instances(self, ids: list[str], months: int) -> None:
        """Extend prepaid instances by `months`."""
        ...


@dataclass(frozen=True)
class InitTarget:
    """A host to initialise: how to reach it, and its variables for the playbook."""

    name: str
    address: str | None
    vars: dict


@dataclass(frozen=True)
class InitEvent:
    host: str
    status: str  # initialising | ready | failed | timed_out
    task: str | None = None
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.status in ("ready", "failed", "timed_out")


class HostInit(Protocol):
    """Initialises new hosts (NTP, sysctl, Docker): Ansible, or the simulation."""

    def run(self, hosts: list[InitTarget], emit: Callable[[InitEvent], None], timeout_s: float) -> None:
        """Initialise the hosts, emitting their progress; returns when done or out of time."""
        ...
