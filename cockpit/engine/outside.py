"""Calls to the outside (container engines, the cloud): one pattern for all of them.

1. The intent is written (a CallRow, pending) in the same fenced transaction as the change that
   needs it.
2. The call is made outside any transaction: no lock is held while an engine or a cloud answers.
3. The answer is recorded in a fenced transaction.

Every call carries a key that makes a repeat safe (a container's name, a client token; deleting
what is already gone counts as done), so an engine that dies between 1 and 3 is replaced by one
that makes the call again and gets the same answer. A task's calls go stage by stage: stage n+1
starts once stage n is answered, and a call marked `after_ok` is cancelled when a call of an
earlier stage failed. Transient failures (an engine down, throttling) are tried again with
back-off, up to MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from peewee import fn

from cockpit.backends.base import CloudError, ContainerError
from cockpit.backends.discovery import DiscoveryError
from cockpit.core.ecs_queue import Kind, classify
from cockpit.store.db import bulk_insert
from cockpit.store.models import CallRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
PARALLEL = 8  # calls in flight at once for one stage (each to its own host, mostly)
BATCH = 500  # calls made, then recorded in one fenced transaction, at a time

Handler = Callable[[dict], dict]


@dataclass(frozen=True)
class Intent:
    kind: str  # container.start | container.remove | instance.delete | instance.renew
    key: str
    target: str
    request: dict
    stage: int = 0
    after_ok: bool = True


@dataclass(frozen=True)
class Call:
    id: int
    task: int | None
    stage: int
    kind: str
    key: str
    target: str
    request: dict
    attempts: int


@dataclass(frozen=True)
class Answer:
    call: Call
    result: dict | None  # None when the call failed
    error: str | None = None
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None


def intend(task: int | None, intents: list[Intent], real_now: float) -> None:
    """Step 1, in the caller's fenced transaction."""
    bulk_insert(CallRow, [
        {"task": task, "stage": i.stage, "after_ok": i.after_ok, "kind": i.kind, "key": i.key, "target": i.target,
         "request": i.request, "state": "pending", "real_created": real_now}
        for i in intents
    ])


def due(task: int, real_now: float, limit: int = BATCH) -> list[Call]:
    """The task's pending calls of its lowest pending stage whose back-off is over: the first
    `limit` of them, oldest first. The answers are recorded in one fenced transaction, which
    must stay well inside the lease; the caller comes back for the rest."""
    pending = (CallRow.task == task) & (CallRow.state == "pending")
    stage = CallRow.select(fn.MIN(CallRow.stage)).where(pending).scalar()
    if stage is None:
        return []
    rows = (CallRow.select().where(pending & (CallRow.stage == stage) & (CallRow.not_before_real <= real_now))
            .order_by(CallRow.id).limit(limit))
    return [Call(r.id, r.task, r.stage, r.kind, r.key, r.target, r.request, r.attempts) for r in rows]


def waiting(task: int) -> bool:
    """Calls of the task still to be made (or made again)."""
    return CallRow.select().where((CallRow.task == task) & (CallRow.state == "pending")).exists()


def perform(calls: list[Call], handlers: dict[str, Handler]) -> list[Answer]:
    """Step 2: make the calls, outside any transaction. Never raises: each call has an answer."""
    if len(calls) == 1:
        return [_make(calls[0], handlers)]
    with ThreadPoolExecutor(min(PARALLEL, len(calls)), thread_name_prefix="outside") as pool:
        return list(pool.map(lambda c: _make(c, handlers), calls))


def _make(call: Call, handlers: dict[str, Handler]) -> Answer:
    try:
        return Answer(call, handlers[call.kind](call.request) or {})
    except (ContainerError, DiscoveryError) as e:
        return Answer(call, None, str(e), e.transient)
    except CloudError as e:
        return Answer(call, None, f"{e.code}: {e.message}", classify(e.code, e.http_status) in (Kind.THROTTLE, Kind.TRANSIENT))
    except Exception as e:  # noqa: BLE001 - a transport we did not expect: try again, then give up
        log.warning("%s %s: %s: %s", call.kind, call.target, type(e).__name__, e)
        return Answer(call, None, f"{type(e).__name__}: {e}", True)


def record(answers: list[Answer], real_now: float, rng: random.Random | None = None) -> None:
    """Step 3, in the caller's fenced transaction: done, failed, or pending again after a back-off."""
    rng = rng or random.Random()
    failed_stages: dict[int, int] = {}
    for a in answers:
        attempts = a.call.attempts + 1
        if a.ok:
            CallRow.update(state="done", result=a.result, attempts=attempts, error=None, real_done=real_now).where(
                CallRow.id == a.call.id).execute()
        elif a.transient and attempts < MAX_ATTEMPTS:
            wait_s = min(2.0 ** attempts, 60.0) * (0.5 + rng.random() / 2)
            CallRow.update(attempts=attempts, error=a.error, not_before_real=real_now + wait_s).where(
                CallRow.id == a.call.id).execute()
        else:
            CallRow.update(state="failed", attempts=attempts, error=a.error, real_done=real_now).where(
                CallRow.id == a.call.id).execute()
            if a.call.task is not None:
                failed_stages[a.call.task] = min(failed_stages.get(a.call.task, a.call.stage), a.call.stage)
    for task, stage in failed_stages.items():
        CallRow.update(state="cancelled", error=f"a call of stage {stage} failed", real_done=real_now).where(
            (CallRow.task == task) & (CallRow.state == "pending") & (CallRow.stage > stage) & (CallRow.after_ok == True)  # noqa: E712
        ).execute()


def calls_of(task: int) -> list[CallRow]:
    return list(CallRow.select().where(CallRow.task == task).order_by(CallRow.stage, CallRow.id))
