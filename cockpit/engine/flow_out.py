"""The steps of scaling out (`expand`): resource evaluation, quota evaluation, host acquisition,
initialisation, container scheduling, image check, deploy, dependencies, service discovery. Each
is `step(task, spec, runner) -> Outcome`; a step that writes does so in one fenced transaction
together with the mark that it did (so a repeat after a crash finds it done); a step with calls to
the outside goes through `FlowRunner.call_items`."""

from __future__ import annotations

import math
from dataclasses import asdict

from cockpit.backends.base import ContainerError, ContainerSpec
from cockpit.core.addressing import container_name
from cockpit.core.flow import FlowSpec
from cockpit.engine import journal
from cockpit.engine.flow import Called, FlowError, FlowRunner, Outcome, item_log, queue_flow, states
from cockpit.engine.flow_common import FINAL, IMAGE_WAIT_S, STOP_GRACE_S, _move_items, _service
from cockpit.store.db import bulk_insert, bump_version
from cockpit.store.models import ContainerRow, EcsOrderRow, FlowItemRow, HostRow, RegistryImageRow, TaskRow


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

