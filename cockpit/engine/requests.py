"""Actions asked of the engine, where the database enforces roles (store/guards.py).

A Cockpit whose database role may not write (an SRE's, on a PostgreSQL store that `cockpit store
secure` secured) does not change the platform itself. Each action method of the facade is marked
`@requestable`; in such a Cockpit a call becomes a row of `action_request` holding the method's
name and arguments (JSON), and the Cockpit waits for the answer. The active engine takes queued
requests oldest first and runs the same method as the requester: the person the database
recorded (a trigger sets `requester` to session_user), with the role the engine's own role
mapping gives them, lowered to the role the asking Cockpit ran with. The method's change, its
audit entry and the answer land in one fenced transaction: a request is done once or not at
all, and a crash in between leaves it queued for the next engine.

A Cockpit that stops waiting withdraws its request (only while it is still queued), so nothing
is done behind the back of someone who was told it was not. A request nobody withdrew but no
engine took within EXPIRE_S (its Cockpit died) expires rather than acting late.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import peewee as pw

from cockpit.engine import journal
from cockpit.engine.actions import Outcome
from cockpit.engine.lease import LeaseLost
from cockpit.engine.request_args import problem
from cockpit.store.db import db_now, describe, is_postgres
from cockpit.store.models import RequestRow

if TYPE_CHECKING:
    from cockpit.config import Config
    from cockpit.domain import World
    from cockpit.engine.engine import Engine

log = logging.getLogger(__name__)

REQUESTABLE: dict[str, Callable] = {}  # method name -> the facade's own method
WAIT_S = 15.0  # how long a Cockpit waits for an engine's answer before it withdraws the request
EXPIRE_S = 60.0  # a request no engine took by then is not done at all
POLL_S = 0.1
BATCH = 20
MAX_ARGS_BYTES = 256 * 1024


def requestable(method: Callable | None = None, *, wait: bool = True):
    """Mark a facade method as an action: done here, or asked of the engine when this Cockpit may
    not write. Its arguments must be JSON values. `wait=False`: nobody waits for the answer."""

    def mark(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        REQUESTABLE[fn.__name__] = fn

        @functools.wraps(fn)
        def ask_or_do(self, *args, **kwargs):
            client = getattr(self, "requests", None)
            if client is None:
                return fn(self, *args, **kwargs)
            bound = sig.bind(self, *args, **kwargs)
            params = {k: v for k, v in list(bound.arguments.items())[1:]}
            return client.ask(fn.__name__, params, wait=wait)

        return ask_or_do

    return mark(method) if method is not None else mark


def _answer(state: str, message: str | None, task: int | None) -> Outcome:
    return Outcome(state == "done", message or state, task)


class RequestClient:
    """A Cockpit's side: ask, wait, withdraw when no engine answers."""

    def __init__(self, db: pw.Database, cfg: Config, wait_s: float = WAIT_S):
        self.db = db
        self.cfg = cfg
        self.wait_s = wait_s

    def ask(self, method: str, args: dict, *, wait: bool = True) -> Outcome:
        text = json.dumps(args)
        if len(text) > MAX_ARGS_BYTES:
            return Outcome(False, f"{method}: the request is too big ({len(text) // 1024} KiB; at most "
                                  f"{MAX_ARGS_BYTES // 1024} KiB)")
        try:
            row = {"method": method, "args": args, "role_cap": self.cfg.role, "readonly": self.cfg.readonly,
                   "host": journal.host()[:64], "wait": wait, "created_real": time.time()}
            if not is_postgres(self.db):  # PostgreSQL names the requester itself (a trigger)
                row["requester"] = self.cfg.user
            rid = RequestRow.insert(**row).execute()
        except (pw.PeeweeException, OSError) as e:
            return Outcome(False, f"asking the engine to {method} failed: {describe(e)}")
        if not wait:
            return Outcome(True, f"request {rid} sent to the engine")
        return self._await(rid)

    def _await(self, rid: int) -> Outcome:
        deadline = time.monotonic() + self.wait_s
        q = RequestRow.select(RequestRow.state, RequestRow.message, RequestRow.task).where(RequestRow.id == rid)
        while time.monotonic() < deadline:
            row = q.tuples().first()
            if row is not None and row[0] != "queued":
                return _answer(*row)
            time.sleep(POLL_S)
        withdrawn = RequestRow.update(state="withdrawn").where(
            (RequestRow.id == rid) & (RequestRow.state == "queued")).execute()
        if withdrawn:
            return Outcome(False, f"no engine answered request {rid} within {self.wait_s:g} s: it is withdrawn and "
                                  "nothing was done (is `cockpit engine` running as the service account?)")
        row = q.tuples().first()  # an engine took it just before the withdrawal
        return _answer(*row) if row else Outcome(False, f"request {rid} is gone from the store")


class RequestDesk:
    """The engine's side: answer queued requests as the people who asked."""

    def __init__(self, cfg: Config, world: World, db: pw.Database, engine: Engine):
        self.cfg = cfg
        self.world = world
        self.db = db
        self.engine = engine

    def run(self) -> int:
        """Answer what is queued, oldest first. Raises LeaseLost when the lease went elsewhere."""
        ids = [i for (i,) in RequestRow.select(RequestRow.id).where(RequestRow.state == "queued")
               .order_by(RequestRow.id).limit(BATCH).tuples()]
        for rid in ids:
            try:
                self._take(rid)
            except LeaseLost:
                raise
            except Exception as e:  # noqa: BLE001 - one row nobody can read must not hold up the rest
                log.exception("request %s could not be read", rid)
                with self.engine.lease.fenced():
                    RequestRow.update(state="refused", message=f"refused: the engine could not read it: {describe(e)}",
                                      answered_real=db_now(self.db)).where(
                        (RequestRow.id == rid) & (RequestRow.state == "queued")).execute()
        return len(ids)

    def _take(self, rid: int) -> None:
        with self.engine.lease.fenced():
            q = RequestRow.select().where((RequestRow.id == rid) & (RequestRow.state == "queued"))
            # SKIP LOCKED: a row someone holds (its asker, withdrawing) is left for the next look
            row = (q.for_update(skip_locked=True) if is_postgres(self.db) else q).first()
            if row is None:  # withdrawn meanwhile, or held
                return
            now = db_now(self.db)
            if now - row.created_real > EXPIRE_S:
                outcome = self._refused(row, None, f"expired: no engine took it within {EXPIRE_S:g} s")
                state = "expired"
            else:
                outcome = self._run(row)
                state = "done" if outcome.ok else ("refused" if outcome.refused else "failed")
            RequestRow.update(state=state, message=outcome.message, task=outcome.task, answered_real=now).where(
                RequestRow.id == rid).execute()

    def _run(self, row: RequestRow) -> Outcome:
        from cockpit.config import as_requester
        from cockpit.engine.facade import Cockpit
        from cockpit.identity import IdentityError, resolve_named

        try:
            who = resolve_named(row.requester or "", row.role_cap, self.cfg.roles_file)
        except IdentityError as e:
            return self._refused(row, None, str(e))
        method = REQUESTABLE.get(row.method)
        if method is None:
            return self._refused(row, who.role, f"no action {row.method[:64]!r}")
        args = row.args if isinstance(row.args, dict) else {}
        why = problem(method, args)
        if why:
            return self._refused(row, who.role, f"{row.method}: {why}")
        facade = Cockpit(as_requester(self.cfg, who, row.readonly), self.world, self.db, self.engine)
        facade.asked = (row.id, row.host)
        try:
            with self.db.atomic():  # a savepoint: what the method wrote goes if it fails
                outcome = method(facade, **args)
        except LeaseLost:
            raise
        except Exception as e:  # noqa: BLE001 - answered and kept, never retried for ever
            log.exception("request %s (%s) failed", row.id, row.method)
            outcome = Outcome(False, f"{row.method} failed in the engine: {describe(e)}")
        if not outcome.ok and not facade.audited:  # turned down before the action was asked in full
            self._said(row, who.role, outcome.message, "refused" if outcome.refused else "failed")
        return outcome

    def _refused(self, row: RequestRow, role: str | None, why: str) -> Outcome:
        """Refused before any action method ran: audited as the requester, with the role the
        mapping gives them (the role their Cockpit claimed is only a detail)."""
        self._said(row, role, why, "refused")
        return Outcome(False, f"refused: {why}", refused=True)

    def _said(self, row: RequestRow, role: str | None, why: str, outcome: str) -> None:
        args = row.args if isinstance(row.args, dict) else {}
        shown = json.dumps(args)
        journal.audit(user=row.requester or "?", role=role or "unknown", action=row.method[:64],
                      target=f"request {row.id}", outcome=outcome, platform_t=None, host=row.host,
                      details={"request": row.id, "why": why, "role_claimed": row.role_cap[:20],
                               "args": args if len(shown) <= 4096 else f"{len(shown)} bytes, not kept"})
