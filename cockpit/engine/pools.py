"""Hosts between pools: shrinking a pool into the shared pool, borrowing from it, the day/night
swap, and releasing cloud hosts. A host leaves its pool only once its containers have somewhere
else to run in that pool and IDC: they are re-placed first (batch jobs may be stopped instead,
when a swap says so). Every move is recorded.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from cockpit.backends.base import Cloud, CloudError, ContainerRuntime
from cockpit.core.placement import HostTable, Request, place
from cockpit.domain import Service
from cockpit.engine import journal
from cockpit.engine.state import current_table
from cockpit.store.db import bulk_insert, get_meta, set_meta
from cockpit.store.models import ContainerRow, HostRow, PoolMoveRow


class MoveError(ValueError):
    """The hosts cannot be moved (or released); the message says why. Nothing was changed."""


def pick_hosts(t: HostTable, pool: str, idc: str | None, n: int) -> list[int]:
    """The n live hosts of a pool (in an IDC) that are cheapest to take: fewest containers first."""
    mask = t.alive & (t.pool == pool)
    if idc is not None:
        mask &= t.idc == idc
    idx = np.flatnonzero(mask)
    if len(idx) < n:
        where = f"{pool} in {idc}" if idc else pool
        raise MoveError(f"{where} has {len(idx)} live hosts; {n} asked for")
    load = t.counts[idx].sum(axis=1)
    order = sorted(range(len(idx)), key=lambda k: (int(load[k]), t.names[idx[k]]))
    return [int(idx[k]) for k in order[:n]]


def evacuate(
    t: HostTable, services: dict[str, Service], movers: list[int], stop_batch: bool
) -> tuple[dict[str, list[tuple[int, int]]], dict[str, int]]:
    """Where the movers' containers go within their pool and IDC: {service: [(host, n)]}, and how
    many batch containers are stopped instead. Raises MoveError when an online one cannot go."""
    work = t.copy()
    work.alive = t.alive.copy()
    work.alive[movers] = False  # they are leaving: nothing new lands on them
    placements: dict[str, list[tuple[int, int]]] = defaultdict(list)
    stopped: dict[str, int] = defaultdict(int)
    groups: dict[tuple[str, str, str], int] = defaultdict(int)
    for i in movers:
        for col, name in enumerate(t.services):
            n = int(t.counts[i, col])
            if n:
                groups[(name, str(t.idc[i]), str(t.pool[i]))] += n
    for (name, idc, pool), n in sorted(groups.items()):
        svc = services[name]
        plan = place(work, Request.for_service(svc, n, idc=idc, pool=pool))
        placements[name].extend(plan.per_host().items())
        if plan.unplaced:
            if svc.kind == "batch" and stop_batch:
                stopped[name] += plan.unplaced
            else:
                raise MoveError(
                    f"{plan.unplaced} {name} containers on the hosts to move have nowhere else to run in "
                    f"{pool}/{idc} ({plan.why_unplaced()})"
                )
    return placements, stopped


def _start_elsewhere(t: HostTable, services, placements, runtime: ContainerRuntime, now: float, task: int | None) -> int:
    rows = []
    for name, where in placements.items():
        for i, n in where:
            for ref in runtime.start(t.names[i], name, services[name].image, n):
                rows.append({"service": name, "host": int(t.ids[i]), "idc": str(t.idc[i]), "created_t": now,
                             "task": task, "ref": ref})
    bulk_insert(ContainerRow, rows)
    return len(rows)


def _bump() -> None:
    set_meta("platform_version", str(int(get_meta("platform_version", "0") or 0) + 1))


def move_hosts(spec: dict, actor: str, now: float, runtime: ContainerRuntime, task: int | None = None) -> dict:
    """Apply a move: {"to_pool", "reason", and either "hosts": [names] or "from_pool", "idc",
    "count"; "stop_batch"}. Runs inside the caller's transaction."""
    t, services, _ = current_table()
    to_pool = spec["to_pool"]
    if "hosts" in spec:
        index = {n: i for i, n in enumerate(t.names)}
        missing = [n for n in spec["hosts"] if n not in index]
        if missing:
            raise MoveError(f"no such host in service: {', '.join(missing[:5])}")
        movers = [index[n] for n in spec["hosts"] if str(t.pool[index[n]]) != to_pool]
    else:
        movers = pick_hosts(t, spec["from_pool"], spec.get("idc"), int(spec["count"]))
    if not movers:
        return {"moved": 0, "containers_moved": 0, "stopped": {}}
    placements, stopped = evacuate(t, services, movers, bool(spec.get("stop_batch")))
    moved_containers = _start_elsewhere(t, services, placements, runtime, now, task)
    ids = [int(t.ids[i]) for i in movers]
    ContainerRow.delete().where(ContainerRow.host.in_(ids)).execute()
    HostRow.update(pool=to_pool).where(HostRow.id.in_(ids)).execute()
    bulk_insert(PoolMoveRow, [
        {"host": t.names[i], "from_pool": str(t.pool[i]), "to_pool": to_pool, "t": now, "reason": spec.get("reason", "move"),
         "actor": actor, "containers_moved": int(t.counts[i].sum()), "task": task}
        for i in movers
    ])
    _bump()
    froms = sorted({str(t.pool[i]) for i in movers})
    what = f"{len(movers)} hosts from {', '.join(froms)} to {to_pool} ({spec.get('reason', 'move')})"
    extra = f"; {moved_containers} containers re-placed"
    if stopped:
        extra += "; stopped " + ", ".join(f"{n} {s}" for s, n in stopped.items())
    journal.event(now, "info", "pool", to_pool, f"moved {what}{extra}")
    return {"moved": len(movers), "hosts": [t.names[i] for i in movers], "containers_moved": moved_containers,
            "stopped": dict(stopped)}


def release_hosts(spec: dict, actor: str, now: float, runtime: ContainerRuntime, cloud: Cloud) -> dict:
    """Release cloud hosts: their containers go elsewhere in their pool first, then the instances are
    deleted. {"hosts": [names], "reason", "force": bool} - force releases even when containers
    cannot move (an expiring prepaid host goes whether or not there is room)."""
    t, services, rows = current_table()
    index = {n: i for i, n in enumerate(t.names)}
    by_name = {r["name"]: r for r in rows}
    names = [n for n in spec["hosts"] if n in index]
    not_cloud = [n for n in names if not by_name[n]["instance_id"]]
    if not_cloud:
        raise MoveError(f"only cloud hosts can be released: {', '.join(not_cloud[:5])}")
    movers = [index[n] for n in names]
    lost: dict[str, int] = {}
    try:
        placements, stopped = evacuate(t, services, movers, stop_batch=True)
    except MoveError:
        if not spec.get("force"):
            raise
        placements, stopped = {}, {}
        for i in movers:
            for col, name in enumerate(t.services):
                if t.counts[i, col]:
                    lost[name] = lost.get(name, 0) + int(t.counts[i, col])
    moved = _start_elsewhere(t, services, placements, runtime, now, None)
    ids = [by_name[n]["instance_id"] for n in names]
    try:
        cloud.delete_instances(ids)
    except CloudError as e:
        if e.code != "InvalidInstanceId.NotFound":  # already gone: what we wanted
            raise MoveError(f"the cloud refused to delete them: {e.code}: {e.message}") from None
    host_ids = [int(t.ids[i]) for i in movers]
    ContainerRow.delete().where(ContainerRow.host.in_(host_ids)).execute()
    HostRow.update(released_t=now, alive=False).where(HostRow.id.in_(host_ids)).execute()
    _bump()
    msg = f"released {len(names)} cloud hosts ({spec.get('reason', 'release')}); {moved} containers re-placed"
    if lost:
        msg += "; lost " + ", ".join(f"{n} {s}" for s, n in lost.items())
    journal.event(now, "warn" if lost else "info", "pool", "release", msg)
    return {"released": names, "containers_moved": moved, "stopped": dict(stopped), "lost": lost}


def renew_hosts(spec: dict, actor: str, now: float, cloud: Cloud, add_months) -> dict:
    """Extend prepaid cloud hosts: {"hosts": [names], "months"}."""
    rows = list(HostRow.select().where(HostRow.name.in_(spec["hosts"]) & HostRow.released_t.is_null()))
    bad = [r.name for r in rows if r.charge_type not in ("monthly", "yearly") or not r.instance_id]
    if bad or len(rows) != len(spec["hosts"]):
        raise MoveError(f"only prepaid cloud hosts in service can be renewed: {', '.join(bad) or 'some are gone'}")
    months = int(spec.get("months", 1))
    try:
        cloud.renew_instances([r.instance_id for r in rows], months)
    except CloudError as e:
        raise MoveError(f"the cloud refused to renew them: {e.code}: {e.message}") from None
    for r in rows:
        base = max(r.expires_t or now, now)
        HostRow.update(expires_t=add_months(base, months), expiry_warned=False).where(HostRow.id == r.id).execute()
    journal.event(now, "info", "cost", "renew", f"renewed {len(rows)} prepaid hosts for {months} month(s) by {actor}")
    return {"renewed": [r.name for r in rows], "months": months}
