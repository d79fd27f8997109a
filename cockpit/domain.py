"""Plain typed dataclasses shared by every layer.

World objects are frozen: a world is read once and never changed in memory. Live platform
state (hosts that fail, containers that come and go) lives in the store and is handed around
as the `Host` and `Container` records below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Literal

IdcKind = Literal["private", "cloud"]
HostSource = Literal["physical", "vm", "ecs"]
ChargeType = Literal["owned", "payg", "monthly", "yearly"]
ServiceKind = Literal["http", "rpc", "batch"]
PoolKind = Literal["online", "offline", "shared"]
RegistryRole = Literal["master", "slave"]
Trigger = Literal["manual", "event", "cron"]


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
    addresses: tuple[str, ...] = ()  # real addresses, one per host in order; () for made-up ones


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


DEFAULT_LINK_MBPS = 1000.0  # the simulated bandwidth into a registry when the world gives none
DEFAULT_CONCURRENCY = 4  # transfers at once in one execution of a policy


@dataclass(frozen=True)
class Registry:
    """A registry in an IDC. A slave replicates from one other registry; a master from none, or
    from its dual-master peer (two masters that replicate from each other)."""

    name: str
    idc: str
    role: RegistryRole
    instances: int = 1
    replicates_from: str | None = None
    link_mbps: float = DEFAULT_LINK_MBPS  # simulation only: the bandwidth into this registry


@dataclass(frozen=True)
class RepoFilter:
    """fnmatch globs: a name passes when one `include` glob matches it and no `exclude` glob does."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def allows(self, name: str) -> bool:
        return any(fnmatchcase(name, g) for g in self.include) and not any(fnmatchcase(name, g) for g in self.exclude)


@dataclass(frozen=True)
class ReplicationPolicy:
    """What to copy from `source` to each of `destinations`, and when.

    `override`: replace a tag whose digest differs at the destination (never between dual
    masters); `deletions`: delete at the destination what was deleted at the source;
    `bandwidth_mbps`: a cap for one execution (None: none); `schedule`: cron only, five fields
    in the world's time zone."""

    name: str
    source: str
    destinations: tuple[str, ...]
    repositories: RepoFilter = field(default_factory=RepoFilter)
    tags: RepoFilter = field(default_factory=RepoFilter)
    trigger: Trigger = "event"
    schedule: str | None = None
    override: bool = False
    deletions: bool = False
    bandwidth_mbps: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class Release:
    """On the simulated platform: `image` (NAME:TAG, an image of the world) appears in `registry`
    at `at`, as a push. `variant` builds other content under the same tag (a conflict)."""

    image: str
    registry: str
    at: datetime
    variant: str = ""

    @property
    def repo(self) -> str:
        return self.image.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[1]


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


RuleKind = Literal["cpu", "target", "schedule", "predict", "event"]
RULE_KINDS: tuple[str, ...] = ("cpu", "target", "schedule", "predict", "event")


@dataclass(frozen=True)
class RatePolicy:
    """How fast a target rule may scale, as Kubernetes' HPA behaviour policies: at most `value`
    containers (`pods`) or `value` percent (`percent`) per `period_s`."""

    kind: Literal["pods", "percent"]
    value: int
    period_s: int


# Kubernetes' defaults: up by 100% or 4 pods (whichever is more) per 15 s; down by 100% per 15 s.
HPA_UP = (RatePolicy("percent", 100, 15), RatePolicy("pods", 4, 15))
HPA_DOWN = (RatePolicy("percent", 100, 15),)


@dataclass(frozen=True)
class AutoscaleRule:
    """A scaling rule. Each kind reads its own fields:
    cpu: over `threshold_pct` CPU, multiply the containers by `factor` (once per cool-down);
    target: keep CPU at `target_pct` as the HPA does (`tolerance`, stabilisation windows, rates);
    schedule: from `lead_min` before each `at` (on `days`) for `hold_min`: at least `min_count`
      and/or `factor` x the count at the window's start;
    predict: the next `horizon_min` from yesterday, last week and the trend, at `target_pct`;
    event: while a hot event runs for the service, `factor` x the count at its start, `hold_min`."""

    name: str
    kind: RuleKind
    services: tuple[str, ...]
    threshold_pct: float | None = None
    factor: float | None = None
    at: tuple[str, ...] = ()
    lead_min: int = 30
    hold_min: int = 60
    days: str = "daily"  # daily, weekdays, weekends
    min_count: int | None = None
    target_pct: float | None = None
    tolerance: float = 0.1
    up_window_s: int = 0
    down_window_s: int = 300
    up: tuple[RatePolicy, ...] = HPA_UP
    down: tuple[RatePolicy, ...] = HPA_DOWN
    horizon_min: int = 30
    enabled: bool = True


@dataclass(frozen=True)
class PoolLimits:
    """Bounds on each service of a pool: its containers stay within [min, max]; after a change, no
    scale-down for `cooldown_min`; `target_cpu_pct` is the CPU the pool is run at (the SLO is
    broken in a minute its CPU is more than 10 points over it)."""

    pool: str
    min: int = 0
    max: int = 1_000_000
    cooldown_min: int = 5
    target_cpu_pct: float = 50.0


@dataclass(frozen=True)
class LeadTimes:
    """How long capacity takes to arrive: a container starting on a host with room, a host
    borrowed from the shared pool (moved and made ready), an ECS host created and initialised."""

    container_s: int = 60
    shared_host_s: int = 300
    ecs_host_s: int = 900


@dataclass(frozen=True)
class Scaling:
    """The engine's autoscaling settings: how often rules are evaluated, limits per pool, lead times."""

    interval_s: int = 60
    pools: tuple[PoolLimits, ...] = ()
    lead_times: LeadTimes = LeadTimes()

    def limits(self, pool: str) -> PoolLimits:
        return next((p for p in self.pools if p.pool == pool), PoolLimits(pool))


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
    replication: tuple[ReplicationPolicy, ...] = ()  # the world's, or one per registry others replicate from
    releases: tuple[Release, ...] = ()  # the simulated platform's, in the file's order
    scaling: Scaling = Scaling()
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

    # --- registries: the topology is a forest of masters (or dual-master pairs) and their slaves ---

    @cached_property
    def _registry_index(self) -> dict[str, tuple[int, Registry]]:
        return {r.name: (i, r) for i, r in enumerate(self.registries)}

    @cached_property
    def _replicating_from(self) -> dict[str, tuple[Registry, ...]]:
        fed: dict[str, list[Registry]] = {}
        for r in self.registries:
            if r.replicates_from is not None:
                fed.setdefault(r.replicates_from, []).append(r)
        return {name: tuple(rs) for name, rs in fed.items()}

    def registry(self, name: str) -> Registry:
        """The registry named `name`; KeyError when there is none."""
        if name not in self._registry_index:
            raise KeyError(f"no registry named {name!r}")
        return self._registry_index[name][1]

    def dual_peer(self, name: str) -> str | None:
        """The other master of `name`'s dual-master pair, or None when it has none."""
        r = self.registry(name)
        if r.role != "master" or r.replicates_from is None:
            return None
        peer = self.registry(r.replicates_from)
        return peer.name if peer.role == "master" and peer.replicates_from == name else None

    def children(self, name: str) -> tuple[Registry, ...]:
        """The registries that replicate from `name`, in file order, but its dual-master peer:
        the branches below it in the topology tree."""
        peer = self.dual_peer(name)
        return tuple(r for r in self._replicating_from.get(name, ()) if r.name != peer)

    def topology_roots(self) -> tuple[tuple[Registry, ...], ...]:
        """The tops of the topology, in file order: each a master that replicates from nobody
        (a one-tuple) or a dual-master pair (a two-tuple, in file order)."""
        roots: list[tuple[Registry, ...]] = []
        for i, r in enumerate(self.registries):
            if r.role != "master":
                continue
            peer = self.dual_peer(r.name)
            if r.replicates_from is None:
                roots.append((r,))
            elif peer is not None and self._registry_index[peer][0] > i:
                roots.append((r, self.registry(peer)))
        return tuple(roots)

    def depth(self, name: str) -> int:
        """Hops from the top of `name`'s tree: 0 for a root master or either master of a dual pair,
        1 for its slaves, 2 for theirs (a three-level hierarchy has registries at depth 0 to 2)."""
        hops = 0
        r = self.registry(name)
        while r.replicates_from is not None and self.dual_peer(r.name) is None:
            hops += 1
            if hops > len(self.registries):  # a checked world has no other cycle; never loop forever
                raise ValueError(f"registry {name!r} replicates in a cycle")
            r = self.registry(r.replicates_from)
        return hops

    def policy(self, name: str) -> ReplicationPolicy:
        """The replication policy named `name`; KeyError when there is none."""
        for p in self.replication:
            if p.name == name:
                return p
        raise KeyError(f"no replication policy named {name!r}")

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
