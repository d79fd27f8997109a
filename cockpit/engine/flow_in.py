"""The steps of scaling in (`shrink`): deregister (the most crowded, and the borrowed, hosts
first), drain (until the front door has dropped them), stop, and return or release the hosts
that are left empty. Each is `step(task, spec, runner) -> Outcome`, as in flow_out.py."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from peewee import fn

from cockpit.backends.base import ContainerError
from cockpit.core.flow import FlowSpec
from cockpit.engine import journal
from cockpit.engine.flow import Called, FlowError, FlowRunner, Outcome
from cockpit.engine.flow_common import FINAL, FRONT_WAIT_S, STOP_GRACE_S, _move_items, _service
from cockpit.engine.flow_settle import _undo
from cockpit.store.db import bulk_insert, bump_version
from cockpit.store.models import ContainerRow, FlowItemRow, HostRow, PoolMoveRow, TaskRow


def deregister(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Choose the containers to stop (the most crowded hosts first) and take them out of discovery
    before anything stops, so no request is sent to a container that is going."""
    if "victims" not in task.progress:
        _choose_victims(task, spec, r)
    _, services, _ = _service(spec.service)
    kind = services[spec.service].kind

    def call(it: FlowItemRow) -> Called:
        from cockpit.backends.discovery import DiscoveryError

        req = it.request
        if kind not in ("http", "rpc") or not req.get("address") or not req.get("port"):
            return Called(True, {"said": "not in discovery"})
        try:
            if kind == "http":
                r.ctx.discovery.remove_member(spec.service, req["address"], int(req["port"]))
            else:
                r.ctx.discovery.deregister(spec.service, it.name)
        except DiscoveryError as e:
            return Called(False, {}, str(e), e.transient)
        return Called(True, {"said": "out of discovery"})

    st = r.call_items(task, "deregister", call, retries=spec.retries)
    if st.get("pending") or st.get("running"):
        return Outcome(False, f"{st.get('done', 0)} deregistered")
    with r.ctx.fence():
        # one that could not leave discovery keeps running: stopping it would fail requests
        for it in FlowItemRow.select().where((FlowItemRow.task == task.id) & (FlowItemRow.step == "deregister")
                                             & (FlowItemRow.state == "failed")):
            ContainerRow.update(state="running").where(ContainerRow.name == it.name).execute()
        r.set_progress(task.id, deregistered_real=r.ctx.real_now())
    return Outcome(True, f"{st.get('done', 0)} out of discovery" + (f", {st['failed']} kept (could not leave it)"
                                                                   if st.get("failed") else ""))


def _choose_victims(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> None:
    table, services, rows = _service(spec.service)
    running = dict(ContainerRow.select(ContainerRow.host, fn.COUNT(ContainerRow.id)).where(
        (ContainerRow.service == spec.service) & (ContainerRow.state == "running")).group_by(ContainerRow.host).tuples())
    have = np.array([running.get(int(i), 0) for i in table.ids], dtype=np.int64)  # starting, stopping: not these
    if spec.idc:
        have[table.idc != spec.idc] = 0
    if int(have.sum()) < spec.count:
        raise FlowError(f"{spec.service} runs {int(have.sum())} containers in {spec.idc}; {spec.count} asked to stop")
    load = (table.cpu_used / table.cpu_cap + table.mem_used / table.mem_cap) / 2
    # hosts that can go back (borrowed, ordered) are emptied first, then the most crowded
    spare = np.isin(np.asarray(table.names), list(_spare_hosts(spec, r)))
    take: dict[int, int] = defaultdict(int)
    for _ in range(spec.count):
        i = int(np.lexsort((-load, -have, ~(spare & (have > 0))))[0])
        have[i] -= 1
        take[i] += 1
    real, items = r.ctx.real_now(), []
    for i, n in take.items():
        q = (ContainerRow.select().where((ContainerRow.host == int(table.ids[i])) & (ContainerRow.service == spec.service)
                                         & (ContainerRow.state == "running")).order_by(ContainerRow.id.desc()).limit(n))
        for c in q:
            port = (c.ports or [[0, 0]])[0][1]
            items.append({"task": task.id, "kind": "container", "name": c.name, "host": rows[i]["name"],
                          "step": "deregister", "state": "pending", "updated_real": real,
                          "request": {"host": rows[i]["name"], "name": c.name, "address": c.address, "port": port},
                          "log": [[round(real, 3), "deregister", f"chosen on {rows[i]['name']}"]]})
    with r.ctx.fence():
        # taken only if still running now: another task may have chosen one since they were read
        names = [it["name"] for it in items]
        still = {n for (n,) in ContainerRow.select(ContainerRow.name).where(
            ContainerRow.name.in_(names or [""]) & (ContainerRow.state == "running")).tuples()}
        items = [it for it in items if it["name"] in still]
        if len(items) < spec.count:
            raise FlowError(f"{spec.service} runs {len(items)} containers that can be stopped in {spec.idc} now; "
                            f"{spec.count} asked")
        bulk_insert(FlowItemRow, items)
        ContainerRow.update(state="stopping").where(ContainerRow.name.in_(sorted(still))
                                                    & (ContainerRow.state == "running")).execute()
        r.set_progress(task.id, victims=len(items))
        bump_version()


def drain(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Requests already sent to the leaving containers finish before they stop; with a front door,
    it must have dropped them first (it follows discovery, and may lag or be away)."""
    since = r.ctx.real_now() - task.progress.get("deregistered_real", 0.0)
    if since < spec.drain_s:
        return Outcome(False, f"draining: {spec.drain_s - since:.1f} s left")
    if r.ctx.front is not None:
        leaving = {f"{i.request.get('address')}:{i.request.get('port')}" for i in FlowItemRow.select().where(
            (FlowItemRow.task == task.id) & (FlowItemRow.step == "deregister") & (FlowItemRow.state == "done"))}
        try:
            still = leaving & {m.key for m in r.ctx.front.members(spec.service)}
            why = f"{len(still)} still in nginx's upstreams"
        except Exception as e:  # noqa: BLE001 - the front door's own error, in words
            still, why = leaving, f"nginx does not say its upstreams ({e})"
        if still:
            if since < spec.drain_s + FRONT_WAIT_S:
                return Outcome(False, f"draining: {why}")
            raise FlowError(f"{why} {FRONT_WAIT_S:g} s after they left discovery: not stopped (they serve); "
                            "check the front door (`cockpit lab status`, nginx's error log)")
    return Outcome(True, f"drained for {spec.drain_s:g} s" + (", gone from nginx" if r.ctx.front is not None else ""))


def stop(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    _move_items(task.id, "deregister", "stop", r)
    kind = _service(spec.service)[1][spec.service].kind

    def call(it: FlowItemRow) -> Called:
        try:
            r.ctx.runtime.stop(it.host, it.name, STOP_GRACE_S)
            r.ctx.runtime.remove(it.host, it.name)
        except ContainerError as e:
            failed = Called(False, {}, str(e), e.transient)
            if e.transient and it.attempts < spec.retries:
                return failed
            # it runs on: it serves again rather than run out of discovery, unknown to callers
            back = _undo(r, spec, kind, FlowItemRow(**{**it.__data__, "request": {**it.request, "undo": "restore"}}))
            return Called(False, {}, f"{e}; {'back in discovery' if back.ok else back.error}", e.transient)
        return Called(True, {"said": f"stopped and removed on {it.host}"})

    st = r.call_items(task, "stop", call, retries=spec.retries, hosts=spec.batch)
    with r.ctx.fence():
        for it in FlowItemRow.select().where(FlowItemRow.id.in_(r.claimed or [0]) & (FlowItemRow.step == "stop")
                                             & FlowItemRow.state.in_(("done", "failed"))):
            if it.state == "done":
                ContainerRow.delete().where(ContainerRow.name == it.name).execute()
            else:
                ContainerRow.update(state="running").where(ContainerRow.name == it.name).execute()
        bump_version()
    if st.get("pending") or st.get("running"):
        return Outcome(False, f"{st.get('done', 0)} stopped")
    with r.ctx.fence():
        r.set_progress(task.id, stopped=st.get("done", 0), failed=st.get("failed", 0))
    return Outcome(True, f"{st.get('done', 0)} stopped" + (f", {st['failed']} could not be" if st.get("failed") else ""))


def return_hosts(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Hosts this pool borrowed from the shared pool that now run nothing go back to it; empty
    pay-as-you-go ECS hosts that flows ordered for it are released (prepaid ones are kept until
    they expire: they are paid for)."""
    p = task.progress
    if "return_tasks" not in p:
        empty, release = _empty_hosts(spec, r)
        now, tids = r.ctx.platform_now(), []
        with r.ctx.fence():
            for kind, hosts_, to in (("pool_move", empty, r.ctx.world.shared_pool.name), ("release", release, None)):
                if hosts_:
                    body = {"hosts": hosts_, "reason": f"flow {task.id}"} | ({"to_pool": to} if to else {})
                    tids.append(TaskRow.insert(kind=kind, state="queued", actor=task.actor, created_t=now,
                                               updated_t=now, real_created=r.ctx.real_now(), spec=body).execute())
            r.set_progress(task.id, return_tasks=tids, returning=empty, releasing=release)
            journal.flow_queued(task, now, tids)
        if not tids:
            return Outcome(True, "no borrowed or ordered host is empty")
        return Outcome(False, f"returning {len(empty)} hosts, releasing {len(release)}")
    tasks = [TaskRow.get_by_id(t) for t in p["return_tasks"]]
    waiting = [t.id for t in tasks if t.state not in FINAL]
    if waiting:
        return Outcome(False, f"waiting for task {', '.join(map(str, waiting))}")
    said = []
    for t in tasks:
        what = "back in the shared pool" if t.kind == "pool_move" else "released"
        n = len(p["returning"] if t.kind == "pool_move" else p["releasing"])
        said.append(f"{n} hosts {what}" if t.state == "done" else f"task {t.id} {t.state}: {t.reason}")
    return Outcome(True, "; ".join(said) or "no borrowed or ordered host is empty")


def _spare_hosts(spec: FlowSpec, r: FlowRunner) -> dict[str, str]:
    """The service's pool's hosts in the flow's IDC that a shrink can give back, by name: "return"
    (borrowed from the shared pool) or "release" (pay-as-you-go ECS hosts that flows ordered)."""
    _, services, _ = _service(spec.service)
    pool, shared = services[spec.service].pool, r.ctx.world.shared_pool.name
    borrowed = {m.host for m in PoolMoveRow.select(PoolMoveRow.host).where(
        (PoolMoveRow.to_pool == pool) & (PoolMoveRow.from_pool == shared))}
    expands = list(TaskRow.select(TaskRow.state, TaskRow.progress).where(TaskRow.kind == "expand").tuples())
    ordered = {o for _, prog in expands for o in (prog or {}).get("orders", [])}
    # hosts an open expand flow acquired and has not filled yet are not spare
    taken = {h for state, prog in expands if state in ("queued", "running", "paused")
             for h in (prog or {}).get("acquired", [])}
    q = HostRow.select(HostRow.name, HostRow.order, HostRow.charge_type).where(
        (HostRow.pool == pool) & HostRow.released_t.is_null() & ((HostRow.idc == spec.idc) if spec.idc else True))
    out = {}
    for h in q:
        if h.name in taken:
            continue
        if h.name in borrowed:
            out[h.name] = "return"
        elif h.order in ordered and h.charge_type == "payg":
            out[h.name] = "release"
    return out


def _empty_hosts(spec: FlowSpec, r: FlowRunner) -> tuple[list[str], list[str]]:
    """The spare hosts that run no container: (to return, to release)."""
    spare = _spare_hosts(spec, r)
    busy = {name for (name,) in HostRow.select(HostRow.name).join(
        ContainerRow, on=(ContainerRow.host == HostRow.id)).where(HostRow.name.in_(list(spare) or [""])).tuples()}
    idle = sorted(n for n in spare if n not in busy)
    return [n for n in idle if spare[n] == "return"], [n for n in idle if spare[n] == "release"]

