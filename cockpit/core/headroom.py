"""Headroom what-if: if an IDC, a pool or a hardware class were lost now (or at tonight's peak),
could the rest of the platform absorb its containers, and what would it take?

The model, answered with the placement engine on a copy of the platform:

- Losing a scope takes every host in it out of service: nothing lands on them and the containers
  they ran are gone. Hosts already down or not yet initialised count for nothing either way.
- A service's traffic is shared by all of its running containers wherever they run (core.load).
  So when an IDC is lost its traffic goes to the service's containers in the other IDCs; to keep
  every container's CPU where it is, the lost containers must start again on the survivors,
  anywhere the service may run: its pool in any surviving IDC, under its placement rules
  (constraints, only/never with, at most N per host, host ports).
- Per service, with running = its containers on hosts in service now, lost = those on the lost
  hosts, surviving = running - lost:

      at now:  needed = running, so to_place is exactly the lost containers;
      at peak: needed = ceil(qps_peak x cores_per_kqps / 1000 / (cpu x target%)), the count that
               runs tonight's peak at the pool's target CPU (the world's `scaling.pools`);
               without a target: ceil(running x qps_peak / qps_now), CPU per container as now
      to_place = max(needed - surviving, 0)          (ceilings less 1e-9: float noise in an
                                                      exact multiple adds no container)

  At `peak` every service is counted, not only those that lost containers: tonight's peak needs
  more containers everywhere, and they compete for the same survivors. A service with no
  traffic now, or no running container, keeps its count (needed = running).
- Services are placed one after another, the biggest containers first (cores, then memory, then
  name: big items first pack better), with the spread strategy the engine re-places with. What
  does not fit goes to `whatif.needed`: hosts borrowed from the shared pool first (its survivors,
  each borrowed once across services), then ECS hosts of the service's template type, with cost.
- absorbed: every container to place found a surviving host. Utilisation of a set of hosts is
  the tighter of its summed CPU and memory reservations over its summed capacity (the
  dashboard's Alloc); `after` counts what landed on survivors, not borrowed or new hosts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from cockpit.core.placement import MIB, MILLI, HostTable, Plan, Request, place
from cockpit.core.traffic import level, local_hours
from cockpit.core.whatif import Catalog, Need, needed
from cockpit.domain import Service, Template, TrafficCurve

KINDS = ("idc", "pool", "hardware")
TIMES = ("now", "peak")
_DAY = 86400


class HeadroomError(ValueError):
    """The what-if cannot be answered as asked; the message says why in one line."""


@dataclass(frozen=True)
class Loss:
    kind: str  # idc | pool | hardware
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ServiceDemand:
    """What one service needs after the loss, at the chosen time."""

    service: str
    running: int  # containers on hosts in service now
    lost: int  # of those, on the lost hosts
    qps_now: float
    qps_at: float  # at the chosen time (= qps_now at `now`)
    qps_per_container: float = 0.0  # at `peak`: what one container serves at its pool's target CPU

    @property
    def surviving(self) -> int:
        return self.running - self.lost

    @property
    def needed(self) -> int:
        if self.qps_per_container > 0 and math.isfinite(self.qps_at):
            return max(math.ceil(self.qps_at / self.qps_per_container - 1e-9), 0)
        return containers_needed(self.running, self.qps_now, self.qps_at)

    @property
    def to_place(self) -> int:
        return max(self.needed - self.surviving, 0)


@dataclass
class ServiceHeadroom:
    demand: ServiceDemand
    pool: str
    plan: Plan  # the to_place containers on the survivors
    need: Need  # what it would take for the unplaced: shared pool, then ECS

    @property
    def placed(self) -> int:
        return self.plan.placed

    @property
    def unplaced(self) -> int:
        return self.plan.unplaced

    def as_json(self, names: list[str]) -> dict:
        d = self.demand
        return {
            "service": d.service, "pool": self.pool, "running": d.running, "lost": d.lost,
            "surviving": d.surviving, "qps_now": round(d.qps_now, 1), "qps_at": round(d.qps_at, 1),
            "needed": d.needed, "to_place": d.to_place, "placed": self.placed, "unplaced": self.unplaced,
            "placements": {names[h]: n for h, n in self.plan.per_host().items()},
            "why_unplaced": self.plan.why_unplaced() if self.unplaced else None,
            "needed_hosts": self.need.as_json(),
        }


@dataclass(frozen=True)
class PoolHeadroom:
    pool: str
    hosts_now: int  # in service now, lost ones included
    hosts_lost: int
    util_now: float  # 0..1, lost hosts included
    util_after: float  # survivors, with the re-placed containers
    free_cores_after: float
    free_memory_gb_after: float

    def as_json(self) -> dict:
        return {"pool": self.pool, "hosts_now": self.hosts_now, "hosts_lost": self.hosts_lost,
                "hosts_left": self.hosts_now - self.hosts_lost, "util_now": round(self.util_now, 4),
                "util_after": round(self.util_after, 4), "free_cores_after": round(self.free_cores_after, 3),
                "free_memory_gb_after": round(self.free_memory_gb_after, 3)}


@dataclass
class HeadroomView:
    """The answer: per service what moves and where it lands, per pool what is left."""

    loss: Loss
    at: str  # now | peak
    t: float  # platform time (epoch s) the demand is for
    lost_hosts: list[str]
    services: list[ServiceHeadroom]
    pools: list[PoolHeadroom]
    util_now: float  # every host in service now
    util_after: float  # the survivors after re-placing
    names: list[str] = field(repr=False, default_factory=list)  # host index -> name

    @property
    def absorbed(self) -> bool:
        return self.unplaced == 0

    @property
    def to_place(self) -> int:
        return sum(s.demand.to_place for s in self.services)

    @property
    def unplaced(self) -> int:
        return sum(s.unplaced for s in self.services)

    @property
    def shared_hosts(self) -> int:
        return sum(s.need.shared_hosts for s in self.services)

    @property
    def ecs_hosts(self) -> int:
        return sum(s.need.ecs_hosts for s in self.services)

    @property
    def nowhere(self) -> int:
        return sum(s.need.nowhere for s in self.services)

    @property
    def cost_per_month(self) -> float:
        return sum(s.need.cost_per_month for s in self.services)

    def as_json(self) -> dict:
        return {
            "lost": {"kind": self.loss.kind, "name": self.loss.name, "hosts": self.lost_hosts},
            "at": self.at, "t": self.t, "absorbed": self.absorbed, "to_place": self.to_place,
            "unplaced": self.unplaced, "shared_hosts": self.shared_hosts, "ecs_hosts": self.ecs_hosts,
            "nowhere": self.nowhere, "cost_per_month": round(self.cost_per_month, 2),
            "util_now": round(self.util_now, 4), "util_after": round(self.util_after, 4),
            "services": [s.as_json(self.names) for s in self.services],
            "pools": [p.as_json() for p in self.pools],
        }


def containers_needed(running: int, qps_now: float, qps_at: float) -> int:
    """ceil(running x qps_at / qps_now): the count that keeps CPU per container as it is now."""
    if running <= 0 or not qps_now > 0 or not math.isfinite(qps_at):
        return max(running, 0)
    return max(math.ceil(running * qps_at / qps_now - 1e-9), 0)


def lost_mask(t: HostTable, loss: Loss, known: Iterable[str] = ()) -> np.ndarray:
    """The hosts the loss takes (bool per host). HeadroomError for an unknown kind or name; a
    name is known when a host carries it or it is in `known` (the world's names)."""
    if loss.kind not in KINDS:
        raise HeadroomError(f"lose what? {loss.kind!r} is not one of {', '.join(KINDS)}")
    col = {"idc": t.idc, "pool": t.pool, "hardware": t.hardware}[loss.kind]
    names = set(col.tolist()) | set(known)
    if loss.name not in names:
        raise HeadroomError(f"no {loss.kind} named {loss.name!r} (known: {', '.join(sorted(names)) or 'none'})")
    return np.asarray(col == loss.name, dtype=bool)


def demands(t: HostTable, lost: np.ndarray, qps_now: Mapping[str, float],
            qps_at: Mapping[str, float], per_container: Mapping[str, float] | None = None) -> list[ServiceDemand]:
    """Every service with running containers, counted on the hosts in service now."""
    per_container = per_container or {}
    live = t.counts * t.usable[:, None]
    running = live.sum(axis=0)
    gone = live[lost].sum(axis=0)
    out = []
    for col, name in enumerate(t.services):
        if running[col] > 0:
            now = float(qps_now.get(name, 0.0))
            out.append(ServiceDemand(name, int(running[col]), int(gone[col]), now, float(qps_at.get(name, now)),
                                     float(per_container.get(name, 0.0))))
    return out


def peak_time(curve: TrafficCurve, now: float) -> float:
    """Tonight's peak: the next time, from `now` and within a day, when the daily curve is at its
    highest. That is one of the curve's peaks (22:30 in the demo), the highest on the curve; a
    curve without peaks is sampled minute by minute."""
    local = (now + curve.utc_offset.total_seconds()) % _DAY
    if curve.peaks:
        times = np.array([now + (round(p.at_hour * 3600) - local) % _DAY for p in curve.peaks], dtype=float)
    else:
        times = now + np.arange(0, _DAY, 60, dtype=float)
    heights = level(curve, local_hours(curve, times))
    best = np.flatnonzero(heights >= heights.max() - 1e-12)
    return float(times[best].min())  # of equal heights, the soonest


def _util(t: HostTable, mask: np.ndarray) -> float:
    cap_c, cap_m = t.cpu_cap[mask].sum(), t.mem_cap[mask].sum()
    if not cap_c or not cap_m:
        return 0.0
    return float(max(t.cpu_used[mask].sum() / cap_c, t.mem_used[mask].sum() / cap_m))


def _template(cat: Catalog, service: str) -> Template | None:
    return next((tp for _, tp in sorted(cat.templates.items()) if tp.service == service), None)


def _survivors(t: HostTable, lost: np.ndarray) -> HostTable:
    """A copy where the lost hosts are down and empty (their containers are gone)."""
    work = t.copy()
    work.alive = t.alive & ~lost
    work.counts[lost] = 0
    work.cpu_used[lost] = 0
    work.mem_used[lost] = 0
    work.disk_used[lost] = 0
    return work


def _order(cat: Catalog, ds: list[ServiceDemand]) -> list[ServiceDemand]:
    def key(d: ServiceDemand) -> tuple:
        s: Service = cat.services[d.service]
        return (-s.cpu, -s.memory_gb, d.service)

    return sorted(ds, key=key)


def headroom(t: HostTable, cat: Catalog, loss: Loss, qps_now: Mapping[str, float],
             qps_at: Mapping[str, float], *, at: str = "now", when: float, known: Iterable[str] = (),
             targets: Mapping[str, float] | None = None) -> HeadroomView:
    """Lose `loss` from `t` (left as it is) and re-place the demand at `when` on the survivors.
    `qps_now` and `qps_at`: each service's traffic now and at the chosen time (see the module);
    `targets`: each pool's target CPU %, which sizes the services at `peak`."""
    if at not in TIMES:
        raise HeadroomError(f"--at must be one of {', '.join(TIMES)}, got {at!r}")
    lost = lost_mask(t, loss, known)
    per_container = {}
    if at == "peak":
        for name, svc in cat.services.items():
            target = (targets or {}).get(svc.pool)
            if target and svc.traffic.cores_per_kqps > 0:
                per_container[name] = svc.cpu * target / 100 * 1000 / svc.traffic.cores_per_kqps
    ds = [d for d in demands(t, lost, qps_now, qps_at, per_container) if d.service in cat.services]
    work = _survivors(t, lost)
    spare = work.copy()  # the shared pool as borrowing so far leaves it
    out: list[ServiceHeadroom] = []
    for d in _order(cat, ds):
        if not d.lost and not d.to_place:
            continue
        svc = cat.services[d.service]
        r = Request.for_service(svc, d.to_place)
        plan = place(work, r)
        out.append(ServiceHeadroom(d, svc.pool, plan, needed(spare, cat, r, plan.unplaced, _template(cat, d.service))))
    now_mask = t.usable
    left = work.usable
    pools = []
    for pool in sorted(set(t.pool[now_mask].tolist())):
        in_pool = now_mask & (t.pool == pool)
        after = left & (t.pool == pool)
        pools.append(PoolHeadroom(
            pool, int(in_pool.sum()), int((in_pool & lost).sum()), _util(t, in_pool), _util(work, after),
            float((work.cpu_cap - work.cpu_used)[after].sum() / MILLI),
            float((work.mem_cap - work.mem_used)[after].sum() / MIB),
        ))
    return HeadroomView(loss, at, when, [t.names[i] for i in np.flatnonzero(lost)], out, pools,
                        _util(t, now_mask), _util(work, left), list(t.names))
