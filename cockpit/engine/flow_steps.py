"""Each step of an expansion flow: `step(task, spec, runner) -> Outcome`. A step that writes does
so in one fenced transaction together with the mark that it did (so a repeat after a crash finds
it done); a step with calls to the outside goes through `FlowRunner.call_items`."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict

import numpy as np
from peewee import fn

from cockpit.backends.base import ContainerError, ContainerSpec
from cockpit.core.addressing import container_name
from cockpit.core.flow import FlowSpec
from cockpit.engine import journal
from cockpit.engine.flow import Called, FlowError, FlowRunner, Outcome, item_log, queue_flow, states
from cockpit.store.db import bulk_insert, bump_version
from cockpit.store.models import (
    ContainerRow, EcsOrderRow, FlowItemRow, HostRow, PoolMoveRow, RegistryImageRow, TaskRow,
)

FINAL = ("done", "failed", "cancelled")
IMAGE_WAIT_S = 600.0  # real seconds an image may take to reach an IDC's registry
STOP_GRACE_S = 3.0
FRONT_WAIT_S = 30.0  # how long the front door may lag behind discovery before a shrink gives up  # after deregistering and draining, a container has nothing left to finish


def _service(name: str):
    from cockpit.engine.state import current_table

    table, services, rows = current_table()
    if name not in services:
        raise FlowError(f"no service named {name!r}")
    return table, services, rows


# --- scaling out -----------------------------------------------------------------------------------


def resources(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """How many of the new containers the pool's hosts hold, and what more is needed."""
    from cockpit.core.whatif import WhatIf, WhatIfError, preview
    from cockpit.engine.state import catalog

    table, services, _ = _service(spec.service)
    try:
        p = preview(table, catalog(r.ctx.world, services), WhatIf(spec.service, None, spec.count, idc=spec.idc,
                                                                   strategy=spec.strategy))
    except WhatIfError as e:
        raise FlowError(str(e)) from None
    need = p.root.need
    figures = {"fits": p.root.plan.placed, "need_shared": need.shared_hosts if need else 0,
               "need_ecs": need.ecs_hosts if need else 0, "sid": p.root.sid}
    with r.ctx.fence():
        r.set_progress(task.id, **figures)
    note = f"{figures['fits']} of {spec.count} fit on the pool's hosts"
    if need and need.unplaced:
        note += f"; {need.unplaced} need {figures['need_shared']} shared and {figures['need_ecs']} ECS hosts"
    return Outcome(True, note)


def quota(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """The pool's limit on each of its services (the world's scaling.pools) holds after the flow."""
    _, services, _ = _service(spec.service)
    pool = services[spec.service].pool
    limit = r.ctx.world.scaling.limits(pool).max
    have = ContainerRow.select().where(ContainerRow.service == spec.service).count()
    # other open expand flows of the service that have not placed their containers yet count too
    coming = sum(int(sp.get("count", 0)) for tid, sp, prog in TaskRow.select(TaskRow.id, TaskRow.spec, TaskRow.progress)
                 .where((TaskRow.kind == "expand") & TaskRow.state.in_(("queued", "running", "paused"))
                        & (TaskRow.id != task.id)).tuples()
                 if sp.get("service") == spec.service and "placed" not in (prog or {}))
    if have + coming + spec.count > limit:
        raise FlowError(f"quota: pool {pool} runs at most {limit} containers of {spec.service} (scaling.pools); "
                        f"it runs {have}" + (f", open flows add {coming}" if coming else "")
                        + f", +{spec.count} would make {have + coming + spec.count}")
    return Outcome(True, f"{have}" + (f" + {coming} coming" if coming else "")
                   + f" + {spec.count} within the pool's limit of {limit}")


def hosts(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Borrow from the shared pool, then order ECS hosts, for what the pool cannot hold; wait for them."""
    p = task.progress
    if "host_tasks" not in p:
        if not p.get("need_shared") and not p.get("need_ecs"):
            return Outcome(True, "the pool has room: no host needed")
        return Outcome(False, _acquire(task, spec, r))
    moves = [t for t in TaskRow.select().where(TaskRow.id.in_(p["host_tasks"] or [0]))]
    orders = [o for o in EcsOrderRow.select().where(EcsOrderRow.id.in_(p.get("orders") or [0]))]
    waiting = [f"task {t.id}" for t in moves if t.state not in FINAL] + \
        [f"order {o.id}" for o in orders if o.state not in FINAL]
    if waiting:
        return Outcome(False, f"waiting for {', '.join(waiting)}")
    got = [h for t in moves if t.state == "done" for h in (t.progress or {}).get("hosts", [])]
    got += [h.name for o in orders for h in HostRow.select(HostRow.name).where(HostRow.order == o.id)]
    now = r.ctx.real_now()
    with r.ctx.fence():
        for name in got:
            FlowItemRow.insert(task=task.id, kind="host", name=name, step="init", state="pending", updated_real=now,
                               log=[[round(now, 3), "hosts", "acquired for this flow"]]).on_conflict(
                conflict_target=[FlowItemRow.task, FlowItemRow.kind, FlowItemRow.name],
                update={FlowItemRow.updated_real: now}).execute()
        r.set_progress(task.id, acquired=got)
    lacking = [f"task {t.id} {t.state}: {t.reason}" for t in moves if t.state != "done"]
    return Outcome(True, f"{len(got)} hosts acquired" + (f"; {'; '.join(lacking)}" if lacking else ""))


def _acquire(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> str:
    world, p = r.ctx.world, task.progress
    _, services, _ = _service(spec.service)
    pool, now = services[spec.service].pool, r.ctx.platform_now()
    said, moves, orders = [], [], []
    with r.ctx.fence():
        if p.get("need_shared"):
            tid = TaskRow.insert(kind="pool_move", state="queued", actor=task.actor, created_t=now, updated_t=now,
                                 real_created=r.ctx.real_now(),
                                 spec={"from_pool": world.shared_pool.name, "idc": spec.idc,
                                       "count": int(p["need_shared"]), "to_pool": pool,
                                       "reason": f"flow {task.id}"}).execute()
            moves.append(tid)
            said.append(f"borrowing {p['need_shared']} shared hosts (task {tid})")
        if p.get("need_ecs"):
            tpl = next((t for t in world.templates if t.sid == p.get("sid") and t.ecs is not None), None)
            if tpl is None:
                said.append(f"no ECS template for the other {p['need_ecs']} hosts")
            else:
                from cockpit.engine.orders import place_order

                oid = place_order(world, tpl, int(p["need_ecs"]), pool, task.actor, now)
                orders.append(oid)
                said.append(f"ordering {p['need_ecs']} ECS hosts (order {oid})")
        r.set_progress(task.id, host_tasks=moves, orders=orders)
        journal.flow_queued(task, now, moves, orders)
    return "; ".join(said)


def init(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Acquired hosts are initialised for their new pool (the engine's init queue runs the
    playbook); a host that fails is tried again up to `retries` times."""
    items = list(FlowItemRow.select().where((FlowItemRow.task == task.id) & (FlowItemRow.kind == "host")
                                            & (FlowItemRow.step == "init")))
    if not items:
        return Outcome(True, "no new host to initialise")
    status = dict(HostRow.select(HostRow.name, HostRow.status).where(
        HostRow.name.in_([i.name for i in items])).tuples())
    real = r.ctx.real_now()
    with r.ctx.fence():
        for it in items:
            s = status.get(it.name)
            if it.state == "pending" and it.not_before_real <= real:
                # a host already on the init queue (an ECS host comes pending) is followed, not queued twice
                HostRow.update(status="pending", init_task=None).where(
                    (HostRow.name == it.name) & HostRow.status.not_in(("pending", "initialising"))).execute()
                FlowItemRow.update(state="running", attempts=it.attempts + 1, updated_real=real,
                                   log=item_log(it, "init", f"initialising (attempt {it.attempts + 1})", real)).where(
                    FlowItemRow.id == it.id).execute()
            elif it.state == "running" and s == "ready":
                FlowItemRow.update(state="done", updated_real=real, log=item_log(it, "init", "ready", real)).where(
                    FlowItemRow.id == it.id).execute()
            elif it.state == "running" and s in ("failed", "timed_out", None):
                from cockpit.core.flow import after_failure

                detail = HostRow.get_or_none(HostRow.name == it.name)
                why = (detail.status_detail if detail else None) or f"host {it.name} is gone"
                nxt = after_failure(it.attempts, spec.retries, transient=s is not None)
                FlowItemRow.update(state=nxt.state, detail=why, not_before_real=real + nxt.wait_s, updated_real=real,
                                   log=item_log(it, "init", f"{s or 'gone'}: {why}", real)).where(
                    FlowItemRow.id == it.id).execute()
    st = states(task.id, "init")
    if st.get("pending") or st.get("running"):
        return Outcome(False, f"{st.get('done', 0)} of {len(items)} hosts ready")
    return Outcome(True, f"{st.get('done', 0)} hosts ready" + (f", {st['failed']} failed" if st.get("failed") else ""))


def schedule(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Where the new containers go, on the platform as it is now; their rows (starting) and
    deploy items written together."""
    from cockpit.core.placement import place
    from cockpit.engine.scale import request_of

    if "placed" in task.progress:
        return Outcome(True, task.progress.get("schedule_note", ""))
    table, services, rows = _service(spec.service)
    svc = services[spec.service]
    req = request_of({"service": spec.service, "count": spec.count, "idc": spec.idc, "strategy": spec.strategy},
                     services)
    per_host = place(table, req).per_host()
    if not per_host:
        raise FlowError(f"no host in {spec.idc} has room for {spec.service} (cpu {svc.cpu}, memory {svc.memory_gb} GB)")
    real, now = r.ctx.real_now(), r.ctx.platform_now()
    crows, items, k = [], [], 0
    for i, n in sorted(per_host.items()):
        host = rows[i]
        for _ in range(n):
            k += 1
            name = container_name(svc.name, task.id, k)
            crows.append({"service": svc.name, "host": host["id"], "idc": host["idc"], "created_t": now,
                          "task": task.id, "name": name, "state": "starting"})
            cs = ContainerSpec(name, host["name"], host.get("address"), svc.name, svc.image, tuple(svc.ports),
                               tuple(svc.host_ports), svc.cpu, svc.memory_gb)
            items.append({"task": task.id, "kind": "container", "name": name, "host": host["name"], "step": "deploy",
                          "state": "pending", "request": _spec_json(cs, svc.pool, task.id), "updated_real": real,
                          "log": [[round(real, 3), "schedule", f"placed on {host['name']}"]]})
    note = f"{k} containers on {len(per_host)} hosts" + (f"; {spec.count - k} have no host with room"
                                                        if k < spec.count else "")
    with r.ctx.fence():
        bulk_insert(ContainerRow, crows)
        bulk_insert(FlowItemRow, items)
        r.set_progress(task.id, placed=k, schedule_note=note)
        bump_version()
    return Outcome(True, note)


def _spec_json(cs: ContainerSpec, pool: str, task: int) -> dict:
    d = asdict(cs)
    for key, value in (("pool", pool), ("task", task)):
        if key in d:
            d[key] = value
    return d


def images(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """The image is in the registry of the IDC the containers pull from; if not, a replication
    is asked for and the flow waits for it."""
    _, services, _ = _service(spec.service)
    ref = services[spec.service].image
    repo, _, tag = ref.rpartition(":")
    reg = next((g for g in r.ctx.world.registries if g.idc == spec.idc), None)
    if reg is None:
        return Outcome(True, f"{spec.idc} has no registry of the world's: its hosts pull {ref} where they are told")
    have = RegistryImageRow.get_or_none((RegistryImageRow.registry == reg.name) & (RegistryImageRow.repo == repo)
                                        & (RegistryImageRow.tag == tag))
    if have is not None:
        return Outcome(True, f"{ref} is in {reg.name} ({have.digest[:19]})")
    p = task.progress
    if "image_wait_real" not in p:
        with r.ctx.fence():
            rid = _replicate_to(r, reg.name, repo, tag, task.actor)
            r.set_progress(task.id, image_wait_real=r.ctx.real_now(), image_replication=rid)
        return Outcome(False, f"{ref} is not in {reg.name} yet" + (f": replication {rid} asked" if rid else ""))
    if r.ctx.real_now() - p["image_wait_real"] > IMAGE_WAIT_S:
        raise FlowError(f"{ref} did not reach {reg.name} within {IMAGE_WAIT_S:g} s: check `cockpit registry status`")
    return Outcome(False, f"waiting for {ref} in {reg.name}")


def _replicate_to(r: FlowRunner, registry: str, repo: str, tag: str, actor: str) -> int | None:
    from cockpit.engine.registry_watch import queue

    policy = next((p for p in r.ctx.world.replication if registry in p.destinations), None)
    if policy is None:
        return None
    return queue(policy.name, "manual", actor, r.ctx.platform_now(), r.ctx.real_now(), scope=[(repo, tag)])


def deploy(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Start the containers, `batch` hosts at a time; a container counts once its engine runs it
    and (on a real platform) it answers on its port."""

    def call(it: FlowItemRow) -> Called:
        req = it.request
        cs = ContainerSpec(**{**req, "ports": tuple(req["ports"]), "host_ports": tuple(req["host_ports"]),
                              **{k: tuple(req[k]) for k in ("command", "health_cmd") if k in req}})
        try:
            c = r.ctx.runtime.start(cs)
        except ContainerError as e:
            return _give_up(it, cs, Called(False, {}, str(e), e.transient))
        res = {"ref": c.ref, "address": c.address, "ports": [list(p) for p in c.ports],
               "said": f"running on {c.host}" + (f" at {c.address}:{c.ports[0][1]}" if c.ports and c.address else "")}
        if r.ctx.ready is not None and c.ports and c.address:
            problem = r.ctx.ready(c.address, c.ports[0][1])
            if problem:
                return _give_up(it, cs, Called(False, {}, problem, transient=True))
        return Called(True, res)

    def _give_up(it: FlowItemRow, cs: ContainerSpec, a: Called) -> Called:
        """On the last attempt, a container that may have been made is removed (by its name):
        one that never served must not run on, unknown to the platform, holding its ports."""
        if a.transient and it.attempts < spec.retries:
            return a
        try:
            r.ctx.runtime.stop(cs.host, cs.name, STOP_GRACE_S)
            r.ctx.runtime.remove(cs.host, cs.name)
            return Called(False, {}, f"{a.error} (removed)", a.transient)
        except ContainerError as e:
            return Called(False, {}, f"{a.error}; and it could not be removed: {e.message}", a.transient)

    st = r.call_items(task, "deploy", call, retries=spec.retries, hosts=spec.batch)
    _settle_deploy(r.claimed, r)
    if st.get("pending") or st.get("running"):
        return Outcome(False, f"{st.get('done', 0)} running, {st.get('pending', 0) + st.get('running', 0)} to go"
                       + (f", {st['failed']} failed" if st.get("failed") else ""))
    done, failed = st.get("done", 0), st.get("failed", 0)
    if not done:
        first = FlowItemRow.select(FlowItemRow.detail).where((FlowItemRow.task == task.id)
                                                             & (FlowItemRow.state == "failed")).scalar()
        raise FlowError(f"no container started: {first}")
    with r.ctx.fence():
        r.set_progress(task.id, deployed=done, failed=failed)
    return Outcome(True, f"{done} running" + (f", {failed} failed" if failed else ""))


def _settle_deploy(items: list[int], r: FlowRunner) -> None:
    """Container rows follow the deploy items just called: running with where they answer, or gone."""
    if not items:
        return
    with r.ctx.fence():
        for it in FlowItemRow.select().where(FlowItemRow.id.in_(items) & (FlowItemRow.step == "deploy")
                                             & FlowItemRow.state.in_(("done", "failed"))):
            row = ContainerRow.get_or_none(ContainerRow.name == it.name)
            if row is None or row.state != "starting":
                continue
            if it.state == "done":
                res = it.result
                ContainerRow.update(state="running", ref=res.get("ref"), address=res.get("address"),
                                    ports=res.get("ports", [])).where(ContainerRow.id == row.id).execute()
            else:
                ContainerRow.delete().where(ContainerRow.id == row.id).execute()
        bump_version()


def dependencies(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """The services this one depends on, by its template's ratios: a flow each, queued with the mark
    that they were (so a repeat queues none twice)."""
    p = task.progress
    if "children" in p:
        return Outcome(True, p.get("children_note", ""))
    tpl = next((t for t in r.ctx.world.templates if t.service == spec.service), None)
    by_sid = {t.sid: t for t in r.ctx.world.templates}
    children, said = [], []
    with r.ctx.fence():
        for dep in (tpl.dependencies if tpl else ()):
            n = math.ceil(dep.ratio * p.get("deployed", spec.count))
            target = by_sid.get(dep.sid)
            if target is None or n < 1:
                continue
            child = FlowSpec(target.service, n, spec.idc, spec.batch, spec.retries, spec.drain_s, spec.strategy, task.id)
            fid = queue_flow("expand", child, task.actor, r.ctx.platform_now())
            children.append(fid)
            said.append(f"flow {fid}: {target.service} +{n} (ratio {dep.ratio:g})")
        note = "; ".join(said) or "no dependencies"
        r.set_progress(task.id, children=children, children_note=note)
    return Outcome(True, note)


def discovery(task: TaskRow, spec: FlowSpec, r: FlowRunner) -> Outcome:
    """Each new container into discovery: an HTTP service's upstream list, an RPC service's
    instances in its IDC."""
    _, services, _ = _service(spec.service)
    kind = services[spec.service].kind
    if kind not in ("http", "rpc"):
        return Outcome(True, f"{spec.service} is a {kind} service: nothing to register")
    _move_items(task.id, "deploy", "discovery", r)
    st = r.call_items(task, "discovery", lambda it: _register(r, spec, kind, it), retries=spec.retries)
    if st.get("pending") or st.get("running"):
        return Outcome(False, f"{st.get('done', 0)} registered")
    return Outcome(True, f"{st.get('done', 0)} in {'the upstreams' if kind == 'http' else 'the RPC registry'}"
                   + (f", {st['failed']} failed" if st.get("failed") else ""))


def _register(r: FlowRunner, spec: FlowSpec, kind: str, it: FlowItemRow) -> Called:
    from cockpit.backends.discovery import DiscoveryError, Member, RpcInstance

    res = it.result
    address, port = res.get("address"), (res.get("ports") or [[0, 0]])[0][1]
    if not address or not port:
        return Called(False, {}, f"{it.name} has no address and port to register", transient=False)
    try:
        if kind == "http":
            r.ctx.discovery.set_member(spec.service, Member(address, int(port)))
            said = f"upstream {address}:{port} of {spec.service}"
        else:
            r.ctx.discovery.register(RpcInstance(spec.service, spec.idc or "", it.name, address, int(port),
                                                 (f"idc:{spec.idc}",)))
            said = f"registered in {spec.idc}"
    except DiscoveryError as e:
        return Called(False, {}, str(e), e.transient)
    return Called(True, {**res, "said": said})


def _move_items(task_id: int, from_step: str, to_step: str, r: FlowRunner) -> None:
    """Items that came through `from_step` go on to `to_step` (once)."""
    if FlowItemRow.select().where((FlowItemRow.task == task_id) & (FlowItemRow.step == from_step)
                                  & (FlowItemRow.state == "done")).exists():
        with r.ctx.fence():
            FlowItemRow.update(step=to_step, state="pending", attempts=0, not_before_real=0.0).where(
                (FlowItemRow.task == task_id) & (FlowItemRow.step == from_step)
                & (FlowItemRow.state == "done") & (FlowItemRow.kind == "container")).execute()


# --- scaling in ------------------------------------------------------------------------------------


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


STEPS = {
    "resources": resources, "quota": quota, "hosts": hosts, "init": init, "schedule": schedule, "images": images,
    "deploy": deploy, "dependencies": dependencies, "discovery": discovery,
    "deregister": deregister, "drain": drain, "stop": stop, "return_hosts": return_hosts,
}


# --- a flow that ended half-way ---------------------------------------------------------------------


def settle(task: TaskRow, r: FlowRunner) -> bool:
    """What a stopped or failed flow left is made whole, once: containers it started that are not
    serving (not in discovery) are stopped and removed; containers it took out of discovery but did
    not stop go back into it and count as running again. Nothing else of the flow goes on."""
    spec = FlowSpec.parse(task.spec)
    if "undo_marked" not in task.progress:
        _mark_undo(task, r)
        return True
    kind = _service(spec.service)[1][spec.service].kind
    st = r.call_items(task, "undo", lambda it: _undo(r, spec, kind, it), retries=spec.retries)
    ended = not (st.get("pending") or st.get("running"))
    unknown = []
    with r.ctx.fence():
        mine = (FlowItemRow.task == task.id) if ended else FlowItemRow.id.in_(r.claimed or [0])
        for it in FlowItemRow.select().where(mine & (FlowItemRow.step == "undo")
                                             & FlowItemRow.state.in_(("done", "failed"))):
            if it.request.get("undo") == "restore":
                if it.state == "done":
                    ContainerRow.update(state="running").where(ContainerRow.name == it.name).execute()
            elif it.state == "done" or ended:
                # one its engine never answered for: not counted as running (it never served); said below
                ContainerRow.delete().where(ContainerRow.name == it.name).execute()
                if it.state == "failed":
                    unknown.append(f"{it.name} on {it.host}")
        bump_version()
    if not ended:
        return bool(r.claimed)
    removed = FlowItemRow.select().where((FlowItemRow.task == task.id) & (FlowItemRow.step == "undo")
                                         & (FlowItemRow.state == "done")).count()
    note = (f"{removed} containers made whole (not serving ones removed, deregistered ones restored)"
            + (f"; {st['failed']} could not be: see their logs" if st.get("failed") else "")
            + (f"; their engines did not answer, check for {', '.join(unknown[:5])}" if unknown else ""))
    with r.ctx.fence():
        r.set_progress(task.id, settled=note)
        from cockpit.engine.flow import flow_event

        flow_event(r.ctx, task, "warn" if st.get("failed") else "info", f"flow {task.id} {task.state}: {note}")
    return True


def _mark_undo(task: TaskRow, r: FlowRunner) -> None:
    """The items to make whole, moved to the step `undo` (with what to do) in one transaction."""
    with r.ctx.fence():
        items = FlowItemRow.select().where((FlowItemRow.task == task.id) & (FlowItemRow.kind == "container"))
        real = r.ctx.real_now()
        for it in items:
            if task.kind == "expand" and not (it.step == "discovery" and it.state == "done"):
                what = "remove"  # started (or maybe started) but not serving
            elif task.kind == "shrink" and (it.step == "deregister" or (it.step == "stop" and it.state != "done")):
                what = "restore"  # out of discovery (or about to be), still running
            else:
                continue
            FlowItemRow.update(step="undo", state="pending", attempts=0, not_before_real=0.0, updated_real=real,
                               request={**it.request, "undo": what, "called": it.attempts > 0 or it.state == "done",
                                        "address": it.request.get("address")
                                        or it.result.get("address"), "port": it.request.get("port")
                                        or (it.result.get("ports") or [[0, 0]])[0][1]},
                               log=item_log(it, "undo", f"the flow {task.state}: to {what}", real)).where(
                FlowItemRow.id == it.id).execute()
        r.set_progress(task.id, undo_marked=True)


def _undo(r: FlowRunner, spec: FlowSpec, kind: str, it: FlowItemRow) -> Called:
    from cockpit.backends.discovery import DiscoveryError, Member, RpcInstance

    req = it.request
    try:
        if req["undo"] == "remove":
            if not req.get("called"):
                return Called(True, {"said": "never started: nothing to remove"})
            r.ctx.runtime.stop(it.host, it.name, STOP_GRACE_S)
            r.ctx.runtime.remove(it.host, it.name)
            return Called(True, {"said": f"removed from {it.host} (it was not serving)"})
        if kind == "http" and req.get("address") and req.get("port"):
            r.ctx.discovery.set_member(spec.service, Member(req["address"], int(req["port"])))
        elif kind == "rpc" and req.get("address") and req.get("port"):
            r.ctx.discovery.register(RpcInstance(spec.service, spec.idc or "", it.name, req["address"],
                                                 int(req["port"]), (f"idc:{spec.idc}",)))
    except ContainerError as e:
        return Called(False, {}, str(e), e.transient)
    except DiscoveryError as e:
        return Called(False, {}, str(e), e.transient)
    return Called(True, {"said": "back in discovery, running"})
