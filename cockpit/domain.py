"""Plain typed dataclasses shared by every layer.

World objects are frozen: a world is read once and never changed in memory. Live platform
state (hosts that fail, containers that come and go) lives in the store and is handed around
as the `Host` and `Container` records below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal

IdcKind = Literal["private", "cloud"]
HostSource = Literal["physical", "vm", "ecs"]
ChargeType = Literal["owned", "payg", "monthly", "yearly"]
ServiceKind = Literal["http", "rpc", "batch"]
PoolKind = Literal["online", "offline", "shared"]


@dataclass(frozen=True)
class Zone:
    name: str
    security_groups: tuple[str, ...]
    vswitches: tuple[str, ...]
    stock: dict[str, int] = field(default_factory=dict)  # the simulated cloud's stock by instance type


@dataclass(frozen=True)
class Idc:
    name: str
    kind: IdcKind
    region: str | None = None
    zones: tuple[Zone, ...] = ()


@dataclass(frozen=True)
class Hardware:
    """A hardware class: hosts of one class are interchangeable, hosts of two are not."""

    name: str
    cores: int
    memory_gb: int
    disk_gb: int


@dataclass(frozen=True)
class Pool:
    name: str
    cluster: str
    kind: PoolKind = "online"

    @property
    def shared(self) -> bool:
        return self.kind == "shared"


@dataclass(frozen=True)
class Cluster:
    name: str
    pools: tuple[str, ...]


@dataclass(frozen=True)
class Charge:
    """What a host costs. `price` is per month (owned, monthly), per hour (payg) or per year (yearly)."""

    type: ChargeType
    price: float = 0.0
    expires: date | None = None


@dataclass(frozen=True)
class HostGroup:
    name: str
    idc: str
    pool: str
    count: int
    hardware: str
    source: HostSource
    charge: Charge
    labels: dict[str, str] = field(default_factory=dict)
    zone: str | None = None


@dataclass(frozen=True)
class Traffic:
    """A service's load: queries per second at the daily peak and CPU cores used per 1,000 qps."""

    peak_qps: float
    cores_per_kqps: float


@dataclass(frozen=True)
class Constraint:
    """`key op value` against a host's labels or capacity, e.g. `role == web`, `disk >= 2T`."""

    key: str
    op: Literal["==", "!=", ">=", "<=", ">", "<", "in"]
    value: str

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value}"


@dataclass(frozen=True)
class PlacementRules:
    constraints: tuple[Constraint, ...] = ()
    only_with: tuple[str, ...] = ()  # only hosts already running one of these services
    never_with: tuple[str, ...] = ()  # never hosts running any of these
    max_per_host: int | None = None


@dataclass(frozen=True)
class Service:
    name: str
    kind: ServiceKind
    image: str
    pool: str
    cpu: float
    memory_gb: float
    disk_gb: float
    ports: tuple[int, ...]
    containers: dict[str, int]
    traffic: Traffic
    rules: PlacementRules = field(default_factory=lambda: PlacementRules())
    host_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Layer:
    name: str
    size_mb: float


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    layers: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class Registry:
    name: str
    idc: str
    role: Literal["master", "slave"]
    instances: int
    replicates_from: str | None = None


@dataclass(frozen=True)
class Dependency:
    sid: int
    ratio: float
    elastic_count: int = 0


@dataclass(frozen=True)
class EcsSpec:
    idc: str
    instance_type: str
    image_id: str
    hardware: str
    charge: Charge
    zones: tuple[str, ...]
    security_groups: tuple[str, ...]
    vswitches: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Swap:
    """Lend `hosts` hosts of an online pool to an offline pool at night; take them back by day."""

    name: str
    idc: str
    online_pool: str
    offline_pool: str
    hosts: int
    night_at: str  # local HH:MM
    day_at: str


@dataclass(frozen=True)
class Template:
    sid: int
    name: str
    service: str
    pool: str
    hardware: str
    image: str
    dependencies: tuple[Dependency, ...] = ()
    ecs: EcsSpec | None = None
    strategy: str = "spread"
    scoring: tuple[tuple[str, float], ...] = ()  # custom weights for this template


@dataclass(frozen=True)
class AutoscaleRule:
    name: str
    kind: Literal["cpu", "schedule", "event"]
    services: tuple[str, ...]
    threshold_pct: float | None = None  # cpu: act when CPU is over this
    factor: float = 2.0  # multiply the container count by this
    at: tuple[str, ...] = ()  # schedule: local HH:MM of the peaks
    lead_min: int = 30  # schedule: scale this long before `at`
    hold_min: int = 60  # schedule/event: keep the extra capacity this long


@dataclass(frozen=True)
class HotEvent:
    name: str
    start: datetime
    duration_min: int
    factor: float
    services: tuple[str, ...]


@dataclass(frozen=True)
class Peak:
    at_hour: float  # local hour of day, e.g. 12.5
    height: float  # share of the daily maximum
    width_h: float  # standard deviation in hours


@dataclass(frozen=True)
class TrafficCurve:
    utc_offset: timedelta
    night_floor: float
    day_level: float
    peaks: tuple[Peak, ...]
    hot_events: tuple[HotEvent, ...] = ()

    @property
    def tz(self) -> timezone:
        return timezone(self.utc_offset)


@dataclass(frozen=True)
class World:
    name: str
    seed: int
    start: datetime
    source: str  # file path, for messages
    idcs: tuple[Idc, ...]
    hardware: tuple[Hardware, ...]
    clusters: tuple[Cluster, ...]
    pools: tuple[Pool, ...]
    host_groups: tuple[HostGroup, ...]
    services: tuple[Service, ...]
    layers: tuple[Layer, ...]
    images: tuple[Image, ...]
    registries: tuple[Registry, ...]
    templates: tuple[Template, ...]
    autoscaling: tuple[AutoscaleRule, ...]
    traffic: TrafficCurve
    custom_scoring: tuple[tuple[str, float], ...] = ()  # the custom strategy's default weights
    swaps: tuple[Swap, ...] = ()
    digest: str = ""  # of the file's text
    lines: dict = field(default_factory=dict, compare=False, repr=False)  # path -> line, for messages

    def idc(self, name: str) -> Idc:
        return next(i for i in self.idcs if i.name == name)

    def hw(self, name: str) -> Hardware:
        return next(h for h in self.hardware if h.name == name)

    def pool(self, name: str) -> Pool:
        return next(p for p in self.pools if p.name == name)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def template(self, sid: int) -> Template:
        return next(t for t in self.templates if t.sid == sid)

    @property
    def shared_pool(self) -> Pool:
        return next(p for p in self.pools if p.shared)

    @property
    def host_count(self) -> int:
        return sum(g.count for g in self.host_groups)


@dataclass
class Host:
    """One host as the platform knows it now."""

    id: int
    name: str
    idc: str
    pool: str
    group: str
    hardware: str
    cores: int
    memory_gb: int
    disk_gb: int
    labels: dict[str, str]
    source: HostSource
    zone: str | None
    charge_type: ChargeType
    price: float
    alive: bool = True
    status: str = "ready"


@dataclass
class HostUsage:
    """What is allocated on a host: reservations, not measured use."""

    containers: int = 0
    cpu: float = 0.0
    memory_gb: float = 0.0
    disk_gb: float = 0.0
    services: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScopeStats:
    """One dashboard row: an IDC, or a pool within an IDC, at one instant."""

    scope: str  # "idc" or "idc/pool"
    hosts_alive: int
    hosts_total: int
    containers: int
    cpu_pct: float  # measured CPU of alive hosts
    alloc_pct: float  # reserved by containers, of alive hosts: the tighter of CPU and memory
    qps: float
