"""Tasks the engine carries out, oldest first, each in three steps (see outside.py):

1. prepare, in a fenced transaction: decide against the platform as it is now, write the rows and
   the intents of the calls it needs; the task is `running`;
2. the calls, outside any transaction;
3. finish, in a fenced transaction: settle the rows from the answers; the task is `done` or
   `failed`, with what happened.

An engine that dies anywhere in between leaves a `running` task whose calls its successor makes
again (safely: each has its key) before finishing it. A failure in step 1 changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from cockpit.domain import World
from cockpit.engine import journal
from cockpit.engine.lease import LeaseLost
from cockpit.engine.outside import Handler, due, perform, record, waiting
from cockpit.store.errors import StoreError
from cockpit.store.models import CallRow, TaskRow


class TaskError(ValueError):
    """The task cannot be done; the message says why. Nothing was changed."""


@dataclass(frozen=True)
class Ctx:
    now: float  # platform time
    real_now: float  # the wall clock, for the calls' bookkeeping
    world: World


@dataclass(frozen=True)
class Kind:
    prepare: Callable[[TaskRow, Ctx], dict]  # -> progress
    finish: Callable[[TaskRow, Ctx], dict]  # -> result
    summary: Callable[[TaskRow, dict], str] | None = None  # the event line of a done task
    undo: Callable[[TaskRow, Ctx], None] | None = None  # after a failure past the calls: make good


def _kinds() -> dict[str, Kind]:
    from cockpit.engine import pools, scale

    return {
        "scale": Kind(scale.prepare_scale, scale.finish_scale, scale.summary),
        "scale_in": Kind(scale.prepare_scale_in, scale.finish_scale_in, scale.summary_in),
        "pool_move": Kind(pools.prepare_move, pools.finish_move, undo=pools.undo_move),
        "remove": Kind(scale.prepare_remove, scale.finish_remove, scale.summary_remove),
        "release": Kind(pools.prepare_release, pools.finish_release),
        "renew": Kind(pools.prepare_renew, pools.finish_renew),
    }


KINDS = ("scale", "scale_in", "pool_move", "release", "renew", "remove")


@dataclass
class Runner:
    fence: Callable[[], AbstractContextManager]  # the engine's lease.fenced
    handlers: dict[str, Handler]
    platform_now: Callable[[], float]
    real_now: Callable[[], float]
    world: World
    rng: random.Random

    def _ctx(self) -> Ctx:
        return Ctx(self.platform_now(), self.real_now(), self.world)

    def recover(self) -> None:
        """On taking over: calls waiting out a back-off are due now. Their times came from the
        previous engine's host, whose clock need not agree with this one's."""
        with self.fence():
            CallRow.update(not_before_real=0.0).where(CallRow.state == "pending").execute()

    def run(self) -> bool:
        """Carry open tasks forward, oldest first, until one waits on a back-off or none is left.
        Tasks go one at a time: each decides on the platform as the ones before left it.
        True when any task moved. Raises LeaseLost when the lease is gone."""
        kinds = _kinds()
        moved = False
        while True:
            task = (TaskRow.select(TaskRow.id, TaskRow.kind, TaskRow.state, TaskRow.actor)
                    .where(TaskRow.kind.in_(KINDS) & TaskRow.state.in_(("queued", "running")))
                    .order_by(TaskRow.id).first())
            if task is None:
                return moved
            kind = kinds[task.kind]
            if task.state == "queued" and not self._prepare(task.id, kind):
                moved = True
                continue
            self._calls(task.id)
            if waiting(task.id):
                return moved
            self._finish(task, kind)
            moved = True

    def _prepare(self, task_id: int, kind: Kind) -> bool:
        ctx = self._ctx()
        task = TaskRow.select(TaskRow.id, TaskRow.kind, TaskRow.actor).where(TaskRow.id == task_id).get()
        try:
            with self.fence():
                task = TaskRow.get_by_id(task_id)  # the whole row, spec included: it may not read
                progress = kind.prepare(task, ctx)
                TaskRow.update(state="running", progress=progress, updated_t=ctx.now).where(
                    TaskRow.id == task.id).execute()
            return True
        except LeaseLost:
            raise
        except TaskError as e:
            self._failed(task, str(e), ctx.now)
            return False
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, StoreError) as e:
            # a task this engine cannot read (written by hand, or damaged): it fails alone, with
            # why, and the tasks after it go on
            self._failed(task, f"the task cannot be read: {type(e).__name__}: {e}", ctx.now)
            return False

    def _calls(self, task_id: int) -> None:
        while calls := due(task_id, self.real_now()):
            with self.fence():  # still ours, just before the calls: a stalled engine makes none
                pass
            answers = perform(calls, self.handlers)
            with self.fence():
                record(answers, self.real_now(), self.rng)

    def _finish(self, task: TaskRow, kind: Kind) -> None:
        ctx = self._ctx()
        try:
            with self.fence():
                task = TaskRow.get_by_id(task.id)
                result = kind.finish(task, ctx)
                TaskRow.update(state="done", progress=result, updated_t=ctx.now).where(TaskRow.id == task.id).execute()
                if kind.summary is not None:
                    journal.event(ctx.now, "info", "task", f"task {task.id}", kind.summary(task, result))
        except TaskError as e:
            self._failed(task, str(e), ctx.now, settle=True, undo=kind.undo)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, StoreError) as e:
            self._failed(task, f"the task cannot be finished: {type(e).__name__}: {e}", ctx.now, settle=True,
                         undo=kind.undo)

    def _failed(self, task: TaskRow, why: str, now: float, settle: bool = False, undo=None) -> None:
        with self.fence():
            if settle:  # the calls were made: their rows must still match what the runtime did
                from cockpit.engine.containers import settle as settle_rows

                settle_rows(task.id)
            if undo is not None:
                undo(task, self._ctx())
            TaskRow.update(state="failed", reason=why, updated_t=now).where(TaskRow.id == task.id).execute()
            journal.event(now, "error", "task", f"task {task.id}", f"{task.kind} task {task.id} failed: {why}")
