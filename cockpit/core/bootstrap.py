"""A world's first state: its hosts, and its containers placed by the placement engine."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time

from cockpit.core.placement import HostTable, Plan, Request, place
from cockpit.domain import Host, HostGroup, World


def instance_id(seed: int, name: str) -> str:
    """A stable ECS-looking instance id for a host the world declares as already running."""
    return "i-" + hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:20]


def hosts_from_world(world: World) -> list[Host]:
    out: list[Host] = []
    for g in world.host_groups:
        hw = world.hw(g.hardware)
        for i in range(1, g.count + 1):
            out.append(
                Host(
                    id=len(out) + 1,
                    name=f"{g.name}-{i:04d}",
                    idc=g.idc,
                    pool=g.pool,
                    group=g.name,
                    hardware=hw.name,
                    cores=hw.cores,
                    memory_gb=hw.memory_gb,
                    disk_gb=hw.disk_gb,
                    labels=dict(g.labels),
                    source=g.source,
                    zone=g.zone,
                    charge_type=g.charge.type,
                    price=g.charge.price,
                )
            )
    return out


def expiry(world: World, group: HostGroup) -> float | None:
    """A prepaid host's expiry as epoch seconds: the end of its expiry date, local time."""
    if group.charge.expires is None:
        return None
    end = datetime.combine(group.charge.expires, time(23, 59, 59), tzinfo=world.traffic.tz)
    return end.timestamp()


@dataclass(frozen=True)
class Initial:
    service: str
    idc: str
    plan: Plan


def place_initial(world: World, hosts: list[Host]) -> tuple[HostTable, list[Initial]]:
    """Place every service's starting containers, service by service, IDC by IDC (spread)."""
    table = HostTable.build(hosts, world.services)
    out: list[Initial] = []
    for svc in world.services:
        for idc, n in svc.containers.items():
            r = Request.for_service(svc, n, idc=idc, strategy="spread", seed=world.seed)
            out.append(Initial(svc.name, idc, place(table, r)))
    return table, out


def history_times(start: float, hours: float, step_s: float) -> list[float]:
    """Sample instants before `start`, oldest first, aligned to the step."""
    first = (start - hours * 3600.0) // step_s * step_s
    out = []
    t = first
    while t < start:
        out.append(t)
        t += step_s
    return out

