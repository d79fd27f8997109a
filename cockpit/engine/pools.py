"""Hosts between pools: shrinking a pool into the shared pool, borrowing from it, the day/night
swap; releasing and renewing cloud hosts. A host leaves its pool only once its containers have
somewhere else to run in that pool and IDC: replacements start first (stage 0), then the old
containers stop (stage 1), and only then does the host move (or its instance go, stage 2).
Batch jobs may be stopped instead, when a swap says so. Every move is recorded.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from cockpit.core.placement import HostTable, Request, place
from cockpit.domain import Service
from cockpit.engine import journal
from cockpit.engine.containers import Changes, on_hosts, settle
from cockpit.engine.outside import Intent, calls_of
from cockpit.engine.state import current_table
from cockpit.engine.tasks import Ctx, TaskError
from cockpit.store.db import bump_version
from cockpit.store.models import ContainerRow, HostRow, PoolMoveRow, TaskRow

def pick_hosts(t: HostTable, pool: str, idc: str | None, n: int) -> list[int]:
    """The n live hosts of a pool (in an IDC) that are cheapest to take: fewest containers first."""
    mask = t.alive & (t.pool == pool)
    if idc is not None:
        mask &= t.idc == idc
    idx = np.flatnonzero(mask)
    if len(idx) < n:
        where = f"{pool} in {idc}" if idc else pool
        raise TaskError(f"{where} has {len(idx)} live hosts; {n} asked for")
    load = t.counts[idx].sum(axis=1)
    order = sorted(range(len(idx)), key=lambda k: (int(load[k]), t.names[idx[k]]))
    return [int(idx[k]) for k in order[:n]]


def evacuate(
    t: HostTable, services: dict[str, Service], movers: list[int], stop_batch: bool
) -> tuple[dict[str, list[tuple[int, int]]], dict[str, int]]:
    """Where the movers' containers go within their pool and IDC: {service: [(host, n)]}, and how
    many batch containers are stopped instead. Raises TaskError when an online one cannot go."""
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
                raise TaskError(
                    f"{plan.unplaced} {name} containers on the hosts to move have nowhere else to run in "
                    f"{pool}/{idc} ({plan.why_unplaced()})"
                )
    return placements, stopped


def _replace_and_stop(task: TaskRow, now: float, t: HostTable, services, rows: list[dict], movers: list[int],
                      placements, leaving_after_ok: bool) -> Changes:
    """Replacements for the movers' containers (stage 0), then the movers' containers stopped (stage 1)."""
    changes = Changes(task.id, now)
    for name, where in placements.items():
        for i, n in where:
            changes.start(services[name], rows[i], n)
    names = {int(t.ids[i]): t.names[i] for i in movers}
    changes.remove(on_hosts(list(names), names), stage=1, after_ok=leaving_after_ok)
    return changes


# --- moves -------------------------------------------------------------------------------------


def prepare_move(task: TaskRow, ctx: Ctx) -> dict:
    """{"to_pool", "reason", and either "hosts": [names] or "from_pool", "idc", "count"; "stop_batch"}."""
    spec = task.spec
    t, services, rows = current_table()
    to_pool = spec["to_pool"]
    if "hosts" in spec:
        index = {n: i for i, n in enumerate(t.names)}
        missing = [n for n in spec["hosts"] if n not in index]
        if missing:
            raise TaskError(f"no such host in service: {', '.join(missing[:5])}")
        movers = [index[n] for n in spec["hosts"] if str(t.pool[index[n]]) != to_pool]
    else:
        movers = pick_hosts(t, spec["from_pool"], spec.get("idc"), int(spec["count"]))
    if not movers:
        return {"movers": [], "stopped": {}}
    placements, stopped = evacuate(t, services, movers, bool(spec.get("stop_batch")))
    changes = _replace_and_stop(task, ctx.now, t, services, rows, movers, placements, leaving_after_ok=True)
    changes.write(ctx.real_now)
    return {"movers": [[t.names[i], str(t.pool[i]), int(t.counts[i].sum())] for i in movers],
            "stopped": dict(stopped), "replacements": len(changes.rows)}


def finish_move(task: TaskRow, ctx: Ctx) -> dict:
    spec, p, now = task.spec, task.progress, ctx.now
    if not p["movers"]:
        return {"moved": 0, "hosts": [], "containers_moved": 0, "stopped": {}}
    s = settle(task.id)
    if s.start_errors:
        raise TaskError(f"{len(s.start_errors)} replacement containers did not start ({s.start_errors[0]}): "
                        "no host moved")
    movers = [m for m in p["movers"] if m[0] not in s.not_removed]
    to_pool = spec["to_pool"]
    HostRow.update(pool=to_pool).where(HostRow.name.in_([m[0] for m in movers])).execute()
    for name, from_pool, n in movers:
        PoolMoveRow.insert(host=name, from_pool=from_pool, to_pool=to_pool, t=now, reason=spec.get("reason", "move"),
                           actor=task.actor, containers_moved=n, task=task.id).execute()
    bump_version()
    froms = sorted({m[1] for m in movers})
    extra = f"; {s.started} containers re-placed"
    if p["stopped"]:
        extra += "; stopped " + ", ".join(f"{n} {svc}" for svc, n in p["stopped"].items())
    if s.not_removed:
        extra += f"; {len(s.not_removed)} hosts stayed: a container on them could not be stopped ({s.first_error()})"
    journal.event(now, "warn" if s.not_removed else "info", "pool", to_pool,
                  f"moved {len(movers)} hosts from {', '.join(froms)} to {to_pool} ({spec.get('reason', 'move')}){extra}")
    return {"moved": len(movers), "hosts": [m[0] for m in movers], "containers_moved": s.started,
            "stopped": p["stopped"], "stayed": sorted(s.not_removed)}


def undo_move(task: TaskRow, ctx: Ctx) -> None:
    """A move that failed after some replacements started: they are surplus (the old containers
    still run), so a task stops them again."""
    started = [name for (name,) in ContainerRow.select(ContainerRow.name).where(
        (ContainerRow.task == task.id) & (ContainerRow.state == "running")).tuples()]
    if started:
        TaskRow.insert(kind="remove", state="queued", actor=f"undo:task {task.id}", created_t=ctx.now,
                       updated_t=ctx.now, real_created=ctx.real_now,
                       spec={"containers": started, "reason": f"replacements of failed task {task.id}"}).execute()


# --- releases ----------------------------------------------------------------------------------


def prepare_release(task: TaskRow, ctx: Ctx) -> dict:
    """Release cloud hosts: {"hosts": [names], "reason", "force": bool}. Their containers start
    elsewhere in their pool, then stop, then the instances are deleted. `force` releases even when
    containers cannot move (an expiring prepaid host goes whether or not there is room)."""
    spec = task.spec
    t, services, rows = current_table()
    index = {n: i for i, n in enumerate(t.names)}
    by_name = {r["name"]: r for r in rows}
    names = [n for n in spec["hosts"] if n in index]
    not_cloud = [n for n in names if not by_name[n]["instance_id"]]
    if not_cloud:
        raise TaskError(f"only cloud hosts can be released: {', '.join(not_cloud[:5])}")
    movers = [index[n] for n in names]
    force = bool(spec.get("force"))
    lost: dict[str, int] = {}
    try:
        placements, stopped = evacuate(t, services, movers, stop_batch=True)
    except TaskError:
        if not force:
            raise
        placements, stopped = {}, {}
        for i in movers:
            for col, name in enumerate(t.services):
                if t.counts[i, col]:
                    lost[name] = lost.get(name, 0) + int(t.counts[i, col])
    changes = _replace_and_stop(task, ctx.now, t, services, rows, movers, placements, leaving_after_ok=not force)
    changes.intents += [Intent("instance.delete", f"delete:{by_name[n]['instance_id']}", n,
                               {"id": by_name[n]["instance_id"], "host": n}, stage=2, after_ok=not force)
                        for n in names]
    changes.write(ctx.real_now)
    return {"hosts": names, "stopped": dict(stopped), "lost": lost}


def finish_release(task: TaskRow, ctx: Ctx) -> dict:
    now = ctx.now
    s = settle(task.id)
    p = task.progress
    deleted = {c.request["host"] for c in calls_of(task.id) if c.kind == "instance.delete" and c.state == "done"}
    errors = [f"{c.target}: {c.error}" for c in calls_of(task.id) if c.kind == "instance.delete" and c.state == "failed"]
    ids = [h.id for h in HostRow.select(HostRow.id).where(HostRow.name.in_(sorted(deleted)))]
    if ids:  # the instances are gone: so is whatever still ran on them
        ContainerRow.delete().where(ContainerRow.host.in_(ids)).execute()
        HostRow.update(released_t=now, alive=False).where(HostRow.id.in_(ids)).execute()
    bump_version()
    if not deleted:
        raise TaskError(f"no instance was deleted: {(errors + s.start_errors + s.remove_errors + ['cancelled'])[0]}")
    msg = f"released {len(deleted)} cloud hosts ({task.spec.get('reason', 'release')}); {s.started} containers re-placed"
    if p["lost"]:
        msg += "; lost " + ", ".join(f"{n} {svc}" for svc, n in p["lost"].items())
    if errors:
        msg += f"; {len(errors)} not deleted ({errors[0]})"
    journal.event(now, "warn" if p["lost"] or errors else "info", "pool", "release", msg)
    return {"released": sorted(deleted), "containers_moved": s.started, "stopped": p["stopped"], "lost": p["lost"],
            "errors": errors[:5]}


# --- renewals ----------------------------------------------------------------------------------


def prepare_renew(task: TaskRow, ctx: Ctx) -> dict:
    """Extend prepaid cloud hosts: {"hosts": [names], "months"}. One call, with a client token:
    an engine that renews again after a crash does not pay twice."""
    from cockpit.engine.outside import intend
    from cockpit.store.db import get_meta

    rows = list(HostRow.select().where(HostRow.name.in_(task.spec["hosts"]) & HostRow.released_t.is_null()))
    bad = [r.name for r in rows if r.charge_type not in ("monthly", "yearly") or not r.instance_id]
    if bad or len(rows) != len(task.spec["hosts"]):
        raise TaskError(f"only prepaid cloud hosts in service can be renewed: {', '.join(bad) or 'some are gone'}")
    months = int(task.spec.get("months", 1))
    key = f"renew:{get_meta('store_id')}:{task.id}"
    intend(task.id, [Intent("instance.renew", key, ",".join(r.name for r in rows[:5]),
                            {"ids": [r.instance_id for r in rows], "months": months, "token": key})], ctx.real_now)
    return {"hosts": [r.name for r in rows], "months": months}


def finish_renew(task: TaskRow, ctx: Ctx) -> dict:
    from cockpit.engine.ecs import add_months

    now = ctx.now
    (call,) = calls_of(task.id)
    if call.state != "done":
        raise TaskError(f"the cloud refused to renew them: {call.error}")
    months = task.progress["months"]
    rows = list(HostRow.select().where(HostRow.name.in_(task.progress["hosts"])))
    for r in rows:
        base = max(r.expires_t or now, now)
        HostRow.update(expires_t=add_months(base, months, ctx.world), expiry_warned=False).where(HostRow.id == r.id).execute()
    journal.event(now, "info", "cost", "renew", f"renewed {len(rows)} prepaid hosts for {months} month(s) by {task.actor}")
    return {"renewed": [r.name for r in rows], "months": months}

