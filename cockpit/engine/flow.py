"""Expansion flows: tasks of kind `expand` and `shrink` that run the seed's steps one after the
other (core/flow.py), each host and container kept as a FlowItemRow with its state and log.

A flow is worked by the scheduling manager of its IDC (engine/managers.py): one step at a time,
the step's calls made outside any transaction and recorded in a fenced one, as every call to the
outside is (docs/architecture.md). The store is the journal: an item is `running` from just
before its call until its answer is recorded, so an engine that dies in between leaves it
`running`, and its successor makes the call again, which is safe because each call has its key
(a container's name, an upstream member's address:port). A step already `done` never runs again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

from cockpit.core.flow import FlowSpec, after_failure, append_log, next_step
from cockpit.domain import World
from cockpit.engine import journal
from cockpit.engine.lease import LeaseLost
from cockpit.store.errors import StoreError
from cockpit.store.models import FlowItemRow, TaskRow

log = logging.getLogger(__name__)

FLOW_KINDS = ("expand", "shrink")
ACTIVE = ("queued", "running")
ENDED = ("cancelled", "failed")  # a flow that ended half-way: what it left is settled once
CLAIM_MAX = 8  # items called in one pass: a stop or a pause is seen between passes


class FlowError(ValueError):
    """The flow cannot go on; the message says why, in words an SRE can act on."""


@dataclass(frozen=True)
class Outcome:
    """A step's answer: `done` moves the flow on; otherwise it waits and the step runs again."""

    done: bool
    note: str = ""


@dataclass(frozen=True)
class Called:
    """One item's call, answered: ok with a result, or an error (transient when it may pass)."""

    ok: bool
    result: dict
    error: str = ""
    transient: bool = False


@dataclass
class FlowCtx:
    """What the steps work with. `fence` is the engine's lease.fenced; calls go outside it."""

    world: World
    fence: Callable[[], AbstractContextManager]
    platform_now: Callable[[], float]
    real_now: Callable[[], float]
    runtime: object  # backends.base.ContainerRuntime
    discovery: object  # backends.discovery.Discovery
    ready: Callable[[str, int], str | None] | None = None  # a real container answers? None when yes
    front: object | None = None  # the front door (nginx) that follows discovery, if any


def item_log(item: FlowItemRow, step: str, text: str, real: float) -> list:
    return append_log(item.log or [], [round(real, 3), step, text])


def flow_event(ctx: FlowCtx, task: TaskRow, level: str, text: str) -> None:
    journal.event(ctx.platform_now(), level, "flow", f"flow {task.id}", text)


class FlowRunner:
    """Carries flows forward, oldest first, one step at a time, for the IDCs whose scheduling
    manager this engine is (`idcs`; None: every IDC)."""

    def __init__(self, ctx: FlowCtx):
        self.ctx = ctx
        self.claimed: list[int] = []  # the items the last call_items claimed
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="flow-call")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def recover(self) -> int:
        """On taking over: calls a dead engine left `running` are made again (safely: keyed). A
        host `running` in initialisation is waiting on the init queue, not a call: it stays."""
        with self.ctx.fence():
            return FlowItemRow.update(state="pending", not_before_real=0.0).where(
                (FlowItemRow.state == "running") & ~((FlowItemRow.kind == "host") & (FlowItemRow.step == "init"))
            ).execute()

    def run(self, idcs: set[str] | None = None) -> bool:
        """One step of each open flow of these IDCs, oldest first. True when something moved."""
        from cockpit.engine import flow_steps

        q = (TaskRow.select(TaskRow.id, TaskRow.spec, TaskRow.state, TaskRow.progress)
             .where(TaskRow.kind.in_(FLOW_KINDS) & TaskRow.state.in_(ACTIVE + ENDED)).order_by(TaskRow.id))
        moved = False
        for tid, spec, state, prog in list(q.tuples()):  # read whole: an open read would keep an old snapshot
            if idcs is not None and (spec or {}).get("idc") not in idcs:
                continue
            if state in ENDED and (prog or {}).get("settled"):
                continue
            task = TaskRow.get_by_id(tid)
            try:
                if state in ENDED:
                    moved |= flow_steps.settle(task, self)
                else:
                    moved |= self._step(task, flow_steps.STEPS)
            except LeaseLost:
                raise
            except FlowError as e:
                self._fail(task, str(e))
                moved = True
            except (KeyError, TypeError, ValueError, AttributeError, StoreError) as e:
                self._fail(task, f"the flow cannot be read: {type(e).__name__}: {e}")
                moved = True
            except Exception as e:  # noqa: BLE001 - a surprise fails this flow alone, with why; the others go on
                log.exception("flow %s", tid)
                self._fail(task, f"{type(e).__name__}: {e}")
                moved = True
        return moved

    def _step(self, task: TaskRow, steps: dict) -> bool:
        p = dict(task.progress or {})
        step = p.get("step")
        if task.state == "queued" or step is None:
            spec = FlowSpec.parse(task.spec)  # a damaged spec fails the flow before anything runs
            step = next_step(task.kind, None)
            with self.ctx.fence():
                self._enter(task, p, step)
                flow_event(self.ctx, task, "info", f"flow {task.id} by {task.actor}: {spec.service} "
                           f"{'+' if task.kind == 'expand' else '-'}{spec.count} in {spec.idc} started")
                journal.flow_audit(task, "started", self.ctx.platform_now(), spec=task.spec)
            return True
        self.claimed = []
        out = steps[step](task, FlowSpec.parse(task.spec), self)
        if not out.done:
            if out.note and out.note != p["steps"][step].get("note"):
                with self.ctx.fence():
                    self._note(task.id, step, out.note)
            return bool(self.claimed)  # calls were made: go on at once
        with self.ctx.fence():
            fresh = TaskRow.get_by_id(task.id)
            nxt = next_step(task.kind, step)
            if fresh.state not in ACTIVE:  # paused or stopped while the step ran: it is done, the next waits
                self._close_step(fresh, step, out.note, then=None, pointer=nxt)
                return True
            self._close_step(fresh, step, out.note, then=nxt)
        return True

    # --- the flow's own state --------------------------------------------------------------

    def _enter(self, task: TaskRow, p: dict, step: str) -> None:
        """The flow at `step` (only while it is open: a pause or a stop that came first stands)."""
        steps = dict(p.get("steps") or {})
        steps[step] = {"state": "running", "t0": self.ctx.real_now(), "note": ""}
        TaskRow.update(state="running", progress={**p, "step": step, "steps": steps},
                       updated_t=self.ctx.platform_now()).where(
            (TaskRow.id == task.id) & TaskRow.state.in_(ACTIVE)).execute()

    def _note(self, task_id: int, step: str, note: str) -> None:
        t = TaskRow.get_by_id(task_id)
        p = dict(t.progress)
        p["steps"] = {**p["steps"], step: {**p["steps"][step], "note": note}}
        TaskRow.update(progress=p).where(TaskRow.id == task_id).execute()

    def _close_step(self, task: TaskRow, step: str, note: str, then: str | None, pointer: str | None = None) -> None:
        """`step` done; the flow goes on to `then`, or is done when there is none. A paused or
        stopped flow's pointer moves on to `pointer` without entering it (resume starts there)."""
        p = dict(task.progress)
        p["steps"] = {**p["steps"], step: {**p["steps"][step], "state": "done", "t1": self.ctx.real_now(), "note": note}}
        if then is None and pointer is None and task.state in ACTIVE:
            TaskRow.update(state="done", progress={**p, "step": None, "finished": step},
                           updated_t=self.ctx.platform_now()).where(
                (TaskRow.id == task.id) & TaskRow.state.in_(ACTIVE)).execute()
            flow_event(self.ctx, task, "info", f"flow {task.id} done: {summary(task, p)}")
            journal.flow_audit(task, "done", self.ctx.platform_now(), summary=summary(task, p))
            return
        if pointer is not None:
            p["step"] = pointer
            p["steps"][pointer] = {"state": "running", "t0": self.ctx.real_now(), "note": ""}
        TaskRow.update(progress=p).where(TaskRow.id == task.id).execute()
        if then is not None:
            self._enter(TaskRow.get_by_id(task.id), p, then)

    def _fail(self, task: TaskRow, why: str) -> None:
        with self.ctx.fence():
            t = TaskRow.get_by_id(task.id)
            p = dict(t.progress or {})
            step = p.get("step")
            if step and step in (p.get("steps") or {}):
                p["steps"] = {**p["steps"], step: {**p["steps"][step], "state": "failed", "t1": self.ctx.real_now(),
                                                   "note": why}}
            TaskRow.update(state="failed", reason=why, progress=p, updated_t=self.ctx.platform_now()).where(
                (TaskRow.id == task.id) & TaskRow.state.in_(ACTIVE)).execute()
            flow_event(self.ctx, task, "error", f"flow {task.id} failed at {step or 'its start'}: {why}")
            journal.flow_audit(task, "failed", self.ctx.platform_now(), step=step, why=why)

    def set_progress(self, task_id: int, **kw) -> None:
        """Merge figures into the flow's progress (the caller's fenced transaction)."""
        t = TaskRow.get_by_id(task_id)
        TaskRow.update(progress={**t.progress, **kw}).where(TaskRow.id == task_id).execute()

    # --- items: one call each, outside any transaction ------------------------------------

    def call_items(self, task: TaskRow, step: str, call: Callable[[FlowItemRow], Called], *,
                   retries: int, hosts: int | None = None) -> dict[str, int]:
        """Make the calls of the step's items that are due: claim them (`running`) in a fenced
        transaction, call outside it (side by side), record the answers in another. `hosts`:
        only the items of the first that many hosts (a deploy batch). The items' states after."""
        now = self.ctx.real_now()
        with self.ctx.fence():
            q = (FlowItemRow.select().where((FlowItemRow.task == task.id) & (FlowItemRow.step == step)
                                            & (FlowItemRow.state == "pending") & (FlowItemRow.not_before_real <= now))
                 .order_by(FlowItemRow.id))
            items = list(q)
            if hosts is not None:
                keep = list(dict.fromkeys(i.host or i.name for i in items))[:hosts]
                items = [i for i in items if (i.host or i.name) in keep]
            items = items[:CLAIM_MAX]
            self.claimed = [i.id for i in items]
            for it in items:
                FlowItemRow.update(state="running", attempts=it.attempts + 1, updated_real=now,
                                   log=item_log(it, step, f"attempt {it.attempts + 1}", now)).where(
                    FlowItemRow.id == it.id).execute()
        if items:
            answers = list(self._pool.map(lambda it: _safe(call, it), items))
            try:
                with self.ctx.fence():
                    for it, a in zip(items, answers):
                        self._record(it, step, a, retries)
            except LeaseLost:
                raise  # the successor makes the calls again
            except Exception:
                self._unclaim(items)  # not left `running` for good: the calls are made again (keyed)
                raise
        return states(task.id, step)

    def _unclaim(self, items: list[FlowItemRow]) -> None:
        try:
            with self.ctx.fence():
                FlowItemRow.update(state="pending").where(
                    FlowItemRow.id.in_([i.id for i in items]) & (FlowItemRow.state == "running")).execute()
        except Exception:  # noqa: BLE001 - the store is away: the next engine's recover() does it
            log.exception("flow items could not be put back")

    def _record(self, it: FlowItemRow, step: str, a: Called, retries: int) -> None:
        real = self.ctx.real_now()
        it = FlowItemRow.get_by_id(it.id)
        if a.ok:
            FlowItemRow.update(state="done", result=a.result, detail=None, updated_real=real,
                               log=item_log(it, step, a.result.get("said", "done"), real)).where(
                FlowItemRow.id == it.id).execute()
            return
        nxt = after_failure(it.attempts, retries, a.transient)
        said = f"{a.error}" + (f"; again in {nxt.wait_s:g} s" if nxt.state == "pending" else "")
        FlowItemRow.update(state=nxt.state, detail=a.error, updated_real=real, not_before_real=real + nxt.wait_s,
                           log=item_log(it, step, said, real)).where(FlowItemRow.id == it.id).execute()


def _safe(call: Callable[[FlowItemRow], Called], it: FlowItemRow) -> Called:
    try:
        return call(it)
    except Exception as e:  # noqa: BLE001 - a backend's surprise fails this item, with why, not the loop
        log.exception("flow call failed")
        return Called(False, {}, f"{type(e).__name__}: {e}", transient=False)


def states(task_id: int, step: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for (s,) in (FlowItemRow.select(FlowItemRow.state).where((FlowItemRow.task == task_id) & (FlowItemRow.step == step))
                 .tuples()):
        out[s] = out.get(s, 0) + 1
    return out


def summary(task: TaskRow, p: dict) -> str:
    spec = task.spec
    sign = "+" if task.kind == "expand" else "-"
    done = p.get("deployed", p.get("stopped", 0))
    text = f"{spec['service']} {sign}{spec['count']} in {spec.get('idc')}: {done} containers"
    if p.get("failed"):
        text += f", {p['failed']} failed"
    return text


def queue_flow(kind: str, spec: FlowSpec, actor: str, now_t: float) -> int:
    """A new flow (the caller's transaction)."""
    if kind not in FLOW_KINDS:
        raise FlowError(f"no flow kind {kind!r} ({', '.join(FLOW_KINDS)})")
    return TaskRow.insert(kind=kind, state="queued", spec=spec.as_json(), progress={}, actor=actor, created_t=now_t,
                          updated_t=now_t, real_created=time.time()).execute()
