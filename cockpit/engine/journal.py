"""The platform's event log and the audit log: append-only rows, written by the engine and the facade.

The audit log is a hash chain (core/audit_chain.py). Appending reads the last entry's hash and
writes the next entry in one transaction that no other appender can enter: on SQLite the write
lock (every transaction begins IMMEDIATE), on PostgreSQL a row lock on meta's `audit_head` taken
before the read. The unique index on `prev_hash` backs this up: a fork cannot be stored.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache

import peewee as pw

from cockpit.core.audit_chain import GENESIS, Entry, Walk, entry_hash, walk
from cockpit.store.db import is_postgres
from cockpit.store.models import AuditRow, EcsOrderRow, EventRow, TaskRow

AUDIT_HEAD = "audit_head"  # the meta row appenders lock on PostgreSQL
ENGINE_ROLE = "engine"
VERIFY_BATCH = 5000


def event(t: float, level: str, kind: str, scope: str, message: str) -> None:
    EventRow.insert(t=t, level=level, kind=kind, scope=scope, message=message).execute()


@lru_cache(maxsize=1)
def _here() -> str:
    return socket.gethostname()


def host() -> str:
    """This machine's name, as the audit log and requests give it."""
    return _here()


def audit(
    *, user: str, role: str, action: str, target: str, details: dict, outcome: str, platform_t: float | None,
    host: str | None = None,
) -> None:
    """Append an entry to the chain (in the caller's transaction, if any). `host`: where it was
    asked, when that is not here (a request from another jump host)."""
    db = AuditRow._meta.database
    fields = {  # as the store gives them back, so the hash is the one a reader computes
        "real_t": time.time(),
        "platform_t": None if platform_t is None else float(platform_t),  # a REAL column: 5 comes back 5.0
        "user": user,
        "role": role,
        "host": host or _here(),
        "action": action,
        "target": target if len(target) <= 200 else target[:199] + "…",  # a column of 255 on PostgreSQL
        "details": json.loads(AuditRow.details.db_value(details)),
        "outcome": outcome,
    }
    with db.atomic():
        postgres = is_postgres(db)
        if postgres:
            _lock_chain(db)
            fields["db_user"] = session_user(db)  # the trigger refuses any other name
        last = AuditRow.select(AuditRow.id, AuditRow.hash).order_by(AuditRow.id.desc()).limit(1).tuples().first()
        prev = last[1] if last else GENESIS
        if postgres:  # the sequence's next id (taken under the lock: ids follow the chain's order)
            new_id = db.execute_sql("SELECT nextval(pg_get_serial_sequence('audit', 'id'))").fetchone()[0]
        else:
            new_id = (last[0] if last else 0) + 1
        fields["id"] = new_id
        AuditRow.insert(**fields, prev_hash=prev, hash=entry_hash(prev, fields)).execute()


def _lock_chain(db: pw.Database) -> None:
    """Appenders one at a time (PostgreSQL): a row lock on meta's `audit_head`, which only a role
    that may write the store can take (an advisory lock anyone can hold, and stall the engine)."""
    db.execute_sql('INSERT INTO "meta" ("key", "value") VALUES (%s, %s) ON CONFLICT ("key") DO NOTHING',
                   (AUDIT_HEAD, ""))
    db.execute_sql('SELECT "value" FROM "meta" WHERE "key" = %s FOR UPDATE', (AUDIT_HEAD,))


def session_user(db: pw.Database) -> str:
    """The database role this connection is (PostgreSQL), as the database itself says."""
    return db.execute_sql("SELECT session_user").fetchone()[0]


@lru_cache(maxsize=1)
def engine_user() -> str:
    """Who the engine's own changes are audited as: the operating system's user it runs as."""
    from cockpit.identity import os_user

    return os_user().name


def engine_audit(*, action: str, target: str, details: dict, outcome: str, platform_t: float | None) -> None:
    """A change the engine made on its own (a flow's step, an autoscaling decision): audited as
    the engine's OS user, with the role `engine`, in the transaction that made the change."""
    audit(user=engine_user(), role=ENGINE_ROLE, action=action, target=target, details=details, outcome=outcome,
          platform_t=platform_t)


def flow_audit(task: TaskRow, outcome: str, platform_t: float, **details) -> None:
    """A flow started, finished or failed: `flow.expand` or `flow.shrink` on `flow N`."""
    engine_audit(action=f"flow.{task.kind}", target=f"flow {task.id}", details={"by": task.actor, **details},
                 outcome=outcome, platform_t=platform_t)


def flow_queued(task: TaskRow, platform_t: float, tasks: Sequence[int], orders: Sequence[int] = ()) -> None:
    """The pool moves, releases and ECS orders a flow queued: an entry for each."""
    for t in TaskRow.select().where(TaskRow.id.in_(list(tasks) or [0])).order_by(TaskRow.id):
        spec = t.spec or {}
        engine_audit(action=t.kind, target=spec.get("to_pool") or f"task {t.id}",
                     details={"by": task.actor, "flow": task.id, "task": t.id, **spec}, outcome="queued",
                     platform_t=platform_t)
    for o in EcsOrderRow.select().where(EcsOrderRow.id.in_(list(orders) or [0])).order_by(EcsOrderRow.id):
        engine_audit(action="ecs.order", target=f"order {o.id}",
                     details={"by": task.actor, "flow": task.id, "order": o.id, "count": o.count, "pool": o.pool},
                     outcome="queued", platform_t=platform_t)


# --- reading the chain -------------------------------------------------------------------------


def entries(after_id: int = 0, batch: int = VERIFY_BATCH) -> Iterator[Entry]:
    """Every entry after `after_id`, in id order, read a batch at a time (a long log is never
    held whole)."""
    a = AuditRow
    cols = (a.id, a.real_t, a.platform_t, a.user, a.role, a.host, a.action, a.target, a.details, a.outcome,
            a.prev_hash, a.hash, a.db_user)
    while True:
        rows = list(a.select(*cols).where(a.id > after_id).order_by(a.id).limit(batch).tuples())
        for r in rows:
            yield Entry(*r[:8], r[8] or {}, *r[9:])  # the row's values, JSON read by the column
        if len(rows) < batch:
            return
        after_id = rows[-1][0]


def verify(since: Walk | None = None) -> Walk:
    """Walk the chain: whole, or its first break. Given an earlier whole walk, only what came
    after its head is walked, once the head is found unchanged (a quick look between full walks)."""
    if since is not None and since.whole and since.head_id is not None:
        head = AuditRow.select(AuditRow.hash).where(AuditRow.id == since.head_id).tuples().first()
        if head is not None and head[0] == since.head_hash:
            return walk(entries(since.head_id), (since.head_id, since.head_hash), since.entries)
    return walk(entries())


def find(*, user: str | None = None, action: str | None = None, outcome: str | None = None,
         since_real: float | None = None, after_id: int = 0, limit: int = 500) -> list[Entry]:
    """The newest `limit` entries that match, newest first. `action` ending in `.*` matches the
    actions under that prefix (`flow.*`)."""
    a = AuditRow
    cond = a.id > after_id
    if user is not None:
        cond &= a.user == user
    if action is not None:
        cond &= a.action.startswith(action[:-1]) if action.endswith(".*") else a.action == action
    if outcome is not None:
        cond &= a.outcome == outcome
    if since_real is not None:
        cond &= a.real_t >= since_real
    q = a.select().where(cond).order_by(a.id.desc()).limit(limit)
    return [Entry(r.id, r.real_t, r.platform_t, r.user, r.role, r.host, r.action, r.target, r.details or {}, r.outcome,
                  r.prev_hash, r.hash, r.db_user) for r in q]


def distinct(column: str, limit: int = 200) -> list[str]:
    """The values a column holds (users, actions, outcomes), for a filter's choices."""
    col = getattr(AuditRow, column)
    return [v for (v,) in AuditRow.select(col).distinct().order_by(col).limit(limit).tuples()]
