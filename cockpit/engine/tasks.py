"""Scale tasks: a previewed plan, applied by the engine against the platform as it is now.

Between preview and apply, hosts may have died or filled up. Each planned placement is checked
again (the host still passes the filters and has room); what no longer fits is placed afresh
with the same request. The whole task lands in one transaction: all of it or none.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np

from cockpit.backends.base import Cloud, ContainerRuntime
from cockpit.core.placement import HostTable, Request, place
from cockpit.core.placement.filters import room, screen
from cockpit.domain import Constraint
from cockpit.engine import journal
from cockpit.engine.state import current_table
from cockpit.store.db import bulk_insert, get_meta, set_meta
from cockpit.store.models import ContainerRow, TaskRow, proxy


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


def apply_scale(task: TaskRow, now: float, runtime: ContainerRuntime) -> dict:
    """Start the task's containers; returns what happened per service."""
    table, services, _ = current_table()
    index = {name: i for i, name in enumerate(table.names)}
    result = {}
    rows: list[dict] = []
    for part in task.spec["parts"]:
        r = request_of(part, services)
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
        if moved:
            again = place(table, replace(r, count=moved))
            for i, n in again.per_host().items():
                per_host[i] += n
            moved_placed = again.placed
        else:
            moved_placed = 0
        image = services[r.service].image
        for i, n in per_host.items():
            refs = runtime.start(table.names[i], r.service, image, n)
            rows.extend(
                {"service": r.service, "host": int(table.ids[i]), "idc": str(table.idc[i]), "created_t": now,
                 "task": task.id, "ref": ref}
                for ref in refs
            )
        placed = sum(per_host.values())
        result[r.service] = {
            "asked": part["count"] if "count" in part else placed,
            "planned": sum(n for _, n in part["placements"]),
            "placed": placed,
            "replanned": moved_placed,
            "lost": moved - moved_placed,
            "hosts": len(per_host),
        }
    bulk_insert(ContainerRow, rows)
    set_meta("platform_version", str(int(get_meta("platform_version", "0") or 0) + 1))
    return result


def _take(t: HostTable, r: Request, col: int, i: int, k: int) -> None:
    if k <= 0:
        return
    t.cpu_used[i] += k * r.cpu
    t.mem_used[i] += k * r.mem
    t.disk_used[i] += k * r.disk
    t.counts[i, col] += np.int32(k)


def run_queued(now: float, runtime: ContainerRuntime, cloud: Cloud | None = None, add_months=None) -> bool:
    """Apply every queued task (scale, pool moves, releases, renewals), oldest first, each all or
    nothing. True when any ran."""
    from cockpit.engine.pools import MoveError, move_hosts, release_hosts, renew_hosts

    ran = False
    tasks = TaskRow.select().where(TaskRow.kind.in_(KINDS) & (TaskRow.state == "queued")).order_by(TaskRow.id)
    for task in tasks:
        ran = True
        try:
            with proxy.atomic():  # a savepoint: a failed task leaves nothing behind
                if task.kind == "scale":
                    result = apply_scale(task, now, runtime)
                elif task.kind == "pool_move":
                    result = move_hosts(task.spec, task.actor, now, runtime, task.id)
                elif task.kind == "release":
                    result = release_hosts(task.spec, task.actor, now, runtime, _need(cloud))
                else:
                    result = renew_hosts(task.spec, task.actor, now, _need(cloud), add_months)
        except (KeyError, ValueError, MoveError) as e:
            TaskRow.update(state="failed", reason=str(e), updated_t=now).where(TaskRow.id == task.id).execute()
            journal.event(now, "error", "task", f"task {task.id}", f"{task.kind} task {task.id} failed: {e}")
            continue
        TaskRow.update(state="done", progress=result, updated_t=now).where(TaskRow.id == task.id).execute()
        if task.kind == "scale":
            summary = ", ".join(f"{s} +{v['placed']}" + (f" ({v['lost']} did not fit)" if v["lost"] else "")
                                for s, v in result.items())
            journal.event(now, "info", "task", f"task {task.id}", f"scale task {task.id} by {task.actor}: {summary}")
    return ran


KINDS = ("scale", "pool_move", "release", "renew")


def _need(cloud: Cloud | None) -> Cloud:
    if cloud is None:
        raise ValueError("no cloud backend is configured")
    return cloud
