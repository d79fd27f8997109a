"""How capacity arrives in a replayed day, with the world's lead times: a container starts in
`container_s` where its pool has room; beyond that, hosts are borrowed from the shared pool
(`shared_host_s` more) and, beyond those, ECS hosts are created and initialised (`ecs_host_s`
more, paid by the hour from creation). Capacity is counted in cores (memory is not what runs
out first on these pools). Scaling in stops the containers that cost most first: those still
starting, then on ECS hosts (released when empty), then on borrowed hosts (given back when
empty), then in the pool."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cockpit.core.costs import per_hour
from cockpit.domain import LeadTimes, Service, World

SOURCES = ("pool", "shared", "ecs")


@dataclass
class Arrival:
    ready_t: float
    count: int
    source: str


@dataclass
class Holding:
    """One service's containers by where they run, and those on their way."""

    service: Service
    running: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SOURCES})
    arriving: list[Arrival] = field(default_factory=list)
    ecs_hosts: int = 0
    shared_hosts: int = 0

    @property
    def serving(self) -> int:
        return sum(self.running.values())

    @property
    def starting(self) -> int:
        return sum(a.count for a in self.arriving)


@dataclass(frozen=True)
class EcsOffer:
    cores: int
    price_per_hour: float


class Capacity:
    def __init__(self, world: World, lead: LeadTimes, counts: dict[str, int]):
        self.world, self.lead = world, lead
        hw = {h.name: h for h in world.hardware}
        self.room: dict[str, float] = {}  # pool -> free cores
        for g in world.host_groups:
            self.room[g.pool] = self.room.get(g.pool, 0.0) + g.count * hw[g.hardware].cores
        shared = world.shared_pool.name
        self.shared_host_cores = max((hw[g.hardware].cores for g in world.host_groups if g.pool == shared), default=0)
        self.holding: dict[str, Holding] = {}
        for s in world.services:
            n = counts.get(s.name, 0)
            self.room[s.pool] = self.room.get(s.pool, 0.0) - n * s.cpu
            h = Holding(s)
            h.running["pool"] = n
            self.holding[s.name] = h
        # what the shared pool has left once its own services are counted, in whole hosts
        self.shared_free_hosts = int(max(self.room.pop(shared, 0.0), 0.0) // self.shared_host_cores) \
            if self.shared_host_cores else 0
        self.ecs = {s.name: _ecs_offer(world, s.name) for s in world.services}

    def arrive(self, t: float) -> None:
        for h in self.holding.values():
            for a in [a for a in h.arriving if a.ready_t <= t]:
                h.running[a.source] += a.count
                h.arriving.remove(a)

    def add(self, service: str, n: int, t: float) -> tuple[float, int]:
        """Ask for n more containers: (when the last arrives, how many nothing could take)."""
        h = self.holding[service]
        s, lead = h.service, self.lead
        last = t
        take = min(n, int(max(self.room.get(s.pool, 0.0), 0.0) // s.cpu)) if s.cpu else n
        if take:
            self.room[s.pool] = self.room.get(s.pool, 0.0) - take * s.cpu
            last = self._queue(h, t + lead.container_s, take, "pool")
        n -= take
        if n and self.shared_host_cores and self.shared_free_hosts:
            per_host = max(int(self.shared_host_cores // s.cpu), 1)
            hosts = min(math.ceil(n / per_host), self.shared_free_hosts)
            take = min(n, hosts * per_host)
            self.shared_free_hosts -= hosts
            h.shared_hosts += hosts
            last = self._queue(h, t + lead.shared_host_s + lead.container_s, take, "shared")
            n -= take
        offer = self.ecs[service]
        if n and offer is not None:
            per_host = max(int(offer.cores // s.cpu), 1)
            h.ecs_hosts += math.ceil((h.running["ecs"] + self._arriving(h, "ecs") + n) / per_host) - \
                math.ceil((h.running["ecs"] + self._arriving(h, "ecs")) / per_host)
            last = self._queue(h, t + lead.ecs_host_s + lead.container_s, n, "ecs")
            n = 0
        return last - t, n

    def remove(self, service: str, n: int) -> None:
        """Stop n containers, the costliest first."""
        h = self.holding[service]
        for a in sorted(h.arriving, key=lambda a: -a.ready_t):  # the latest to arrive first
            k = min(n, a.count)
            a.count -= k
            n -= k
            self._freed(h, a.source, k)
        h.arriving = [a for a in h.arriving if a.count > 0]
        for src in ("ecs", "shared", "pool"):
            k = min(n, h.running[src])
            h.running[src] -= k
            n -= k
            self._freed(h, src, k)

    def cost_per_hour(self) -> float:
        return sum(h.ecs_hosts * self.ecs[name].price_per_hour for name, h in self.holding.items() if h.ecs_hosts)

    def _freed(self, h: Holding, src: str, k: int) -> None:
        if not k:
            return
        s = h.service
        held = h.running[src] + self._arriving(h, src)
        if src == "pool":
            self.room[s.pool] = self.room.get(s.pool, 0.0) + k * s.cpu
        elif src == "shared":
            per_host = max(int(self.shared_host_cores // s.cpu), 1)
            keep = math.ceil(held / per_host)
            self.shared_free_hosts += h.shared_hosts - keep
            h.shared_hosts = keep
        else:
            per_host = max(int(self.ecs[s.name].cores // s.cpu), 1)
            h.ecs_hosts = math.ceil(held / per_host)

    @staticmethod
    def _arriving(h: Holding, src: str) -> int:
        return sum(a.count for a in h.arriving if a.source == src)

    @staticmethod
    def _queue(h: Holding, ready_t: float, n: int, src: str) -> float:
        h.arriving.append(Arrival(ready_t, n, src))
        return ready_t


def _ecs_offer(world: World, service: str) -> EcsOffer | None:
    """The ECS hosts a service's expansion template orders, if it has one."""
    hw = {h.name: h for h in world.hardware}
    for t in world.templates:
        if t.service == service and t.ecs is not None:
            return EcsOffer(hw[t.ecs.hardware].cores, per_hour(t.ecs.charge.type, t.ecs.charge.price))
    return None
