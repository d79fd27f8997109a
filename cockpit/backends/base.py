"""The Protocols every backend implements; the simulated twin implements the same ones.

The engine talks only to these. A real backend and its sim twin pass one contract suite.
"""

from __future__ import annotations

import hashlib
import threading
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


@dataclass(frozen=True)
class ContainerSpec:
    """One container to run. `name` is unique on the platform: starting it again is safe."""

    name: str
    host: str
    host_address: str | None
    service: str
    image: str
    ports: tuple[int, ...] = ()  # container ports to publish on some free host port
    host_ports: tuple[int, ...] = ()  # ports bound on the host as they are
    cpu: float = 0.0
    memory_gb: float = 0.0


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    host: str
    service: str
    ref: str  # the runtime's id
    state: str  # running | exited | created
    address: str | None
    ports: tuple[tuple[int, int], ...]  # (container port, host port)


class ContainerError(Exception):
    """A container engine's error. `transient` when trying again may work (the engine is down)."""

    def __init__(self, host: str, message: str, transient: bool = False):
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message
        self.transient = transient


class ContainerRuntime(Protocol):
    """Containers on hosts: Docker Engine on each host, or the simulation. Every call may be
    repeated: starting a name that runs returns it, stopping or removing one that is gone is done."""

    def start(self, spec: ContainerSpec) -> ContainerInfo: ...

    def stop(self, host: str, name: str, timeout_s: float = 10.0) -> None: ...

    def remove(self, host: str, name: str) -> None: ...

    def inspect(self, host: str, name: str) -> ContainerInfo | None: ...

    def list(self, host: str) -> list[ContainerInfo]: ...


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
    private_ip: str | None = None


def instance_of(x: dict) -> Instance:
    """An instance from DescribeInstances' answer (the same shape from ECS and the sim cloud)."""
    ips = ((x.get("VpcAttributes") or {}).get("PrivateIpAddress") or {}).get("IpAddress") or []
    return Instance(x["InstanceId"], x.get("ZoneId", ""), x.get("InstanceType", ""), x.get("Status", ""),
                    ips[0] if ips else None)


def renew_token(token: str, instance_id: str) -> str:
    """The ClientToken of one instance's renewal (<= 64 characters), from the call's key."""
    return "renew-" + hashlib.sha256(f"{token}/{instance_id}".encode()).hexdigest()[:40]


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

    def renew_instances(self, ids: list[str], months: int, token: str) -> None:
        """Extend prepaid instances by `months`. The same `token` again renews nothing more."""
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

    def run(self, hosts: list[InitTarget], emit: Callable[[InitEvent], None], timeout_s: float,
            stop: threading.Event | None = None) -> None:
        """Initialise the hosts, emitting their progress; returns when done, out of time, or told
        to `stop` (the engine lost its lease: its successor initialises them again)."""
        ...
