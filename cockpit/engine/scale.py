"""Scale tasks: a previewed plan applied against the platform as it is now, and scale-in.

Between preview and apply, hosts may have died or filled up. Each planned placement is checked
again (the host still passes the filters and has room); what no longer fits is placed afresh
with the same request. Scaling in stops containers where a service is most crowded first, so
the blast radius shrinks.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import replace

import numpy as np

from cockpit.core.placement import HostTable, Request, place
from cockpit.core.placement.filters import room, screen
from cockpit.domain import Constraint
from cockpit.engine.containers import Changes, settle
from cockpit.engine.state import current_table
from cockpit.engine.tasks import Ctx, TaskError
from cockpit.store.models import ContainerRow, TaskRow


def scale_parts(p) -> list[dict]:
    """A previewed plan (core.whatif.Preview) as a scale task's parts: each service with its
    placements, which the task checks again against the platform as it is then."""
    r = p.request
    return [
        {
            "service": sp.service,
            "count": sp.count,
            "idc": r.idc,
            "strategy": r.strategy,
            "extra": [[c.key, c.op, c.value] for c in r.extra] if k == 0 else [],
            "weights": [list(w) for w in r.weights],
            "seed": r.seed,
            "placements": [[p.before.names[h], n] for h, n in sp.plan.per_host().items()],
        }
        for k, sp in enumerate(p.parts)
    ]


def request_of(part: dict, services: dict) -> Request:
    return Request.for_service(
        services[part["service"]],
        part["count"],
        idc=part.get("idc"),
        strategy=part.get("strategy", "spread"),
        extra=tuple(Constraint(*c) for c in part.get("extra", [])),
        weights=tuple((k, float(w)) for k, w in part.get("weights", [])),
        seed=part.get("seed", 0),
    )


def prepare_scale(task: TaskRow, ctx: Ctx) -> dict:
    """Where each part's containers go now; their rows and start calls written."""
    table, services, rows = current_table()
    index = {name: i for i, name in enumerate(table.names)}
    changes = Changes(task.id, ctx.now)
    result = {}
    for part in task.spec["parts"]:
        r = request_of(part, services)
        per_host, replanned, lost = _placements(table, r, part, index)
        for i, n in per_host.items():
            changes.start(services[r.service], rows[i], n)
        result[r.service] = {
            "asked": part.get("count", sum(per_host.values())),
            "planned": sum(n for _, n in part["placements"]),
            "placed": sum(per_host.values()),
            "replanned": replanned,
            "lost": lost,
            "hosts": len(per_host),
        }
    changes.write(ctx.real_now)
    return result


def _placements(table: HostTable, r: Request, part: dict, index: dict[str, int]) -> tuple[dict[int, int], int, int]:
    """The plan's placements that still fit, and the rest placed again: (per host, replanned, lost)."""
    col = table.column(r.service)
    ok = screen(table, r).feasible
    per_host: dict[int, int] = defaultdict(int)
    moved = 0
    for name, n in part["placements"]:
        i = index.get(name)
        k = 0
        if i is not None and ok[i]:
            k = int(min(n, room(table, r, col)[i]))
            _take(table, r, col, i, k)
            per_host[i] += k
        moved += n - k
    replanned = 0
    if moved:
        again = place(table, replace(r, count=moved))
        for i, n in again.per_host().items():
            per_host[i] += n
        replanned = again.placed
    return per_host, replanned, moved - replanned


def _take(t: HostTable, r: Request, col: int, i: int, k: int) -> None:
    if k <= 0:
        return
    t.cpu_used[i] += k * r.cpu
    t.mem_used[i] += k * r.mem
    t.disk_used[i] += k * r.disk
    t.counts[i, col] += np.int32(k)


def finish_scale(task: TaskRow, ctx: Ctx) -> dict:
    s = settle(task.id)
    result = dict(task.progress)
    if s.start_errors:
        failed: dict[str, int] = defaultdict(int)
        for name in _failed_services(task.id):
            failed[name] += 1
        for svc, n in failed.items():
            result[svc] = {**result[svc], "placed": result[svc]["placed"] - n, "failed": n}
        result["errors"] = s.start_errors[:5]
    return result


def _failed_services(task_id: int) -> list[str]:
    from cockpit.engine.outside import calls_of

    return [c.request["service"] for c in calls_of(task_id) if c.kind == "container.start" and c.state != "done"]


def summary(task: TaskRow, result: dict) -> str:
    parts = []
    for s, v in result.items():
        if s == "errors":
            continue
        text = f"{s} +{v['placed']}"
        if v.get("lost"):
            text += f" ({v['lost']} did not fit)"
        if v.get("failed"):
            text += f" ({v['failed']} failed to start)"
        parts.append(text)
    return f"scale task {task.id} by {task.actor}: {', '.join(parts)}"


# --- scale-in ------------------------------------------------------------------------------------


def prepare_scale_in(task: TaskRow, ctx: Ctx) -> dict:
    """{"service", "count", "idc"}: stop `count` containers of the service, one at a time from
    the host that runs most of them (the busiest host first when they tie)."""
    spec = task.spec
    table, services, rows = current_table()
    if spec["service"] not in services:
        raise TaskError(f"no service named {spec['service']!r}")
    col = table.column(spec["service"])
    mask = table.counts[:, col] > 0
    if spec.get("idc"):
        mask &= table.idc == spec["idc"]
    have = table.counts[:, col].copy()
    have[~mask] = 0
    count = int(spec["count"])
    if int(have.sum()) < count:
        where = f" in {spec['idc']}" if spec.get("idc") else ""
        raise TaskError(f"{spec['service']} runs {int(have.sum())} containers{where}; {count} asked to stop")
    load = (table.cpu_used / table.cpu_cap + table.mem_used / table.mem_cap) / 2
    take = crowded_first(have, load, count)
    victims = _newest_on(take, table.ids, spec["service"], rows)
    changes = Changes(task.id, ctx.now)
    changes.remove(victims, stage=0)
    changes.write(ctx.real_now)
    return {spec["service"]: {"asked": count, "hosts": len(take)}}


def crowded_first(have: np.ndarray, load: np.ndarray, count: int) -> dict[int, int]:
    """How many containers to stop per host (index -> n, in the order the hosts were first
    picked), taken one at a time from the host that has most left, the busiest (highest `load`)
    when they tie, then the lowest index. Needs have.sum() >= count.

    A heap, not a sort of every host per container stopped, which on 20,000 hosts cost a
    third of a second of the fenced transaction per 3,000 containers. A host whose load is NaN (a capacity of 0 in a damaged
    store) comes after the others with as many left, as numpy's sort puts NaN last."""
    heap = []
    for i in np.flatnonzero(have > 0):
        x = float(load[i])
        nan = x != x
        heap.append((-int(have[i]), nan, 0.0 if nan else -x, int(i)))
    heapq.heapify(heap)
    take: dict[int, int] = defaultdict(int)
    for _ in range(count):
        h, nan, x, i = heapq.heappop(heap)
        take[i] += 1
        if h + 1 < 0:
            heapq.heappush(heap, (h + 1, nan, x, i))
    return take


def _newest_on(take: dict[int, int], host_ids: np.ndarray, service: str,
               rows: list[dict]) -> list[tuple[int, str, str]]:
    """The newest `n` running containers of the service on each host of `take` (index -> n), as
    (row id, name, host name), host by host in take's order. One query per 500 hosts, not one
    per host, read from the cursor as it is: a big scale-in stops containers on thousands of
    hosts, and reads tens of thousands of rows to pick them."""
    order = list(take)
    found: dict[int, list[tuple[int, str]]] = defaultdict(list)
    db = ContainerRow._meta.database
    for k in range(0, len(order), 500):
        index = {int(host_ids[i]): i for i in order[k : k + 500]}
        q = (ContainerRow.select(ContainerRow.host, ContainerRow.id, ContainerRow.name)
             .where(ContainerRow.host.in_(list(index)) & (ContainerRow.service == service)
                    & (ContainerRow.state == "running"))
             .order_by(ContainerRow.id.desc()))
        for host, cid, name in db.execute(q).fetchall():
            i = index[host]
            if len(found[i]) < take[i]:
                found[i].append((cid, name))
    return [(cid, name, rows[i]["name"]) for i in order for cid, name in found[i]]


def finish_scale_in(task: TaskRow, ctx: Ctx) -> dict:
    s = settle(task.id)
    svc = task.spec["service"]
    result = {svc: {**task.progress[svc], "stopped": s.removed}}
    if s.remove_errors:
        result["errors"] = s.remove_errors[:5]
    return result


def summary_in(task: TaskRow, result: dict) -> str:
    svc = task.spec["service"]
    text = f"scale task {task.id} by {task.actor}: {svc} -{result[svc]['stopped']}"
    if result[svc]["stopped"] < result[svc]["asked"]:
        text += f" ({result[svc]['asked'] - result[svc]['stopped']} could not be stopped)"
    return text


# --- removing named containers (the undo of a failed task) ------------------------------------------


def prepare_remove(task: TaskRow, ctx: Ctx) -> dict:
    """{"containers": [names], "reason"}: stop and remove these containers, where they still run."""
    names = list(task.spec["containers"])
    hosts = {}
    rows = []
    for i in range(0, len(names), 500):
        rows += list(ContainerRow.select(ContainerRow.id, ContainerRow.name, ContainerRow.host)
                     .where(ContainerRow.name.in_(names[i : i + 500]) & (ContainerRow.state == "running")).tuples())
    if rows:
        from cockpit.store.models import HostRow

        hosts = dict(HostRow.select(HostRow.id, HostRow.name).where(HostRow.id.in_({h for _, _, h in rows})).tuples())
    changes = Changes(task.id, ctx.now)
    changes.remove([(cid, name, hosts[h]) for cid, name, h in rows], stage=0)
    changes.write(ctx.real_now)
    return {"asked": len(names), "found": len(rows)}


def finish_remove(task: TaskRow, ctx: Ctx) -> dict:
    s = settle(task.id)
    return {**task.progress, "removed": s.removed, "errors": s.remove_errors[:5]}


def summary_remove(task: TaskRow, result: dict) -> str:
    return f"task {task.id} ({task.spec.get('reason', 'remove')}): {result['removed']} containers stopped and removed"
