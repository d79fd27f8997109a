"""A flow that ended half-way (stopped, or failed) is made whole once: containers it started that
do not serve are removed, containers it took out of discovery but did not stop serve again."""

from __future__ import annotations

from cockpit.backends.base import ContainerError
from cockpit.core.flow import FlowSpec
from cockpit.engine.flow import Called, FlowRunner, item_log
from cockpit.engine.flow_common import STOP_GRACE_S, _service
from cockpit.store.db import bump_version
from cockpit.store.models import ContainerRow, FlowItemRow, TaskRow


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

