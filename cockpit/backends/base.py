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
    memory_gb: float = 0.0  # GiB
    # Optional, JSON-friendly (the engine stores a spec as its call's request and rebuilds it with
    # ContainerSpec(**request), so a list may come back where a tuple went in):
    pool: str | None = None
    task: int | None = None  # the task that made it
    command: tuple[str, ...] = ()  # the process to run; () runs the image's own CMD
    health_cmd: tuple[str, ...] = ()  # exits 0 when healthy; () checks the first port answers HTTP


@dataclass(frozen=True, slots=True)  # slots: an engine holds one per container (200,000 on a big platform)
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


@dataclass(frozen=True)
class ContainerStats:
    """One running container's live figures, from one sample of its engine."""

    name: str
    service: str
    cpu_pct: float | None  # of one core = 100, since the runtime's previous sample; None on the first
    memory_bytes: int  # in use, page cache the kernel may drop not counted (as `docker stats` shows)
    memory_limit_bytes: int  # its limit, or the host's memory when it has none
    health: str | None  # healthy | unhealthy | starting; None without a health check


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


# --- registries (OCI distribution) ---------------------------------------------------------------

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry holds it: its bytes are what its digest is of."""

    media_type: str
    digest: str  # sha256:...
    body: bytes

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class Spooled:
    """A blob fetched once for an execution: a file (real registries) or only its size (the
    simulation, which moves no bytes)."""

    digest: str
    size: int
    path: str | None = None


class RegistryError(Exception):
    """A registry's refusal or a broken transfer, as one clear line. `code` follows the OCI
    distribution spec's error codes where the registry gave one (BLOB_UNKNOWN, MANIFEST_UNKNOWN,
    UNAUTHORIZED, DENIED, ...), else our own: HTTP_<status>, DIGEST_MISMATCH, CONNECTION.
    `retry`: trying again may work (5xx, a cut connection); never for an auth refusal."""

    def __init__(self, registry: str, code: str, message: str, status: int | None = None, retry: bool = False):
        super().__init__(f"{registry}: {code}: {message}")
        self.registry = registry
        self.code = code
        self.message = message
        self.status = status
        self.retry = retry


class Limiter(Protocol):
    """A bandwidth cap shared by an execution's transfers: take(n) returns once n bytes may go."""

    def take(self, n: int) -> None: ...


class Registry(Protocol):
    """One registry: the real ones over the OCI distribution API (backends/registry_oci.py) or
    the simulated twin (backends/sim/registry.py). Every call may raise RegistryError."""

    name: str

    def ping(self) -> None: ...

    def catalog(self) -> list[str]:
        """Every repository (all pages)."""
        ...

    def tags(self, repo: str) -> list[str]:
        """Every tag of a repository (all pages); [] when the repository is unknown."""
        ...

    def manifest(self, repo: str, ref: str) -> Manifest | None:
        """The manifest of a tag or digest, byte-exact; None when there is none."""
        ...

    def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None: ...

    def delete_manifest(self, repo: str, digest: str) -> None: ...

    def has_blob(self, repo: str, digest: str) -> bool: ...

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link a blob this registry holds in another repository; False when it would not."""
        ...

    def fetch_blob(self, repo: str, digest: str, spool_dir: str, limiter: Limiter | None = None) -> Spooled:
        """Download a blob into spool_dir (named by its digest), checking the digest."""
        ...

    def push_blob(self, repo: str, blob: Spooled, limiter: Limiter | None = None) -> None:
        """Upload a spooled blob (the registry checks the digest)."""
        ...
