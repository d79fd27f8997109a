"""One active engine per database: a lease row kept alive by heartbeats, and a fence for writers.

Time is the database's clock, never a host's own: two jump hosts whose clocks disagree still
agree on who holds the lease. Every engine writer (the tick, the task runner, the ECS drainer,
the init-status writer) writes inside `fenced()`: one transaction that first renews the lease
and refuses to go on when it is no longer ours. A process that stalled past its lease therefore
writes nothing after its successor took over. A lease whose holder died without handing it back
lapses after `ttl` seconds and a standby takes it on its next look (every `poll_s`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import peewee as pw

from cockpit.store.db import now_sql
from cockpit.store.models import LeaseRow

TTL_S = 4.0  # a dead engine's lease lapses after this
POLL_S = 0.5  # how often a standby looks; takeover within TTL_S + POLL_S + activation (README: 5 s)


class LeaseLost(Exception):
    """This engine no longer holds the lease: it must write nothing more."""


@dataclass(frozen=True)
class Holder:
    holder: str
    host: str
    pid: int
    expires_real: float

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


class Lease:
    def __init__(
        self,
        db: pw.Database,
        name: str = "engine",
        ttl: float = TTL_S,
        clock: Callable[[], float] | None = None,
    ):
        """`clock` replaces the database's clock (tests that move time by hand)."""
        self.db = db
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def _now(self):
        return self.clock() if self.clock is not None else now_sql(self.db)

    def acquire(self) -> bool:
        """Take the lease if it is free or lapsed, or renew it if it is ours. True while we hold it."""
        if self.renew():
            return True
        if self.holder() is not None:  # held by another: no write needed to know it
            return False
        now = self._now()
        mine = {
            "holder": self.id,
            "host": self.host,
            "pid": self.pid,
            "acquired_real": now,
            "heartbeat_real": now,
            "expires_real": now + self.ttl,
        }
        with self.db.atomic():
            lapsed = (LeaseRow.name == self.name) & (LeaseRow.expires_real < now)
            if LeaseRow.update(**mine).where(lapsed).execute():
                return True
            try:
                with self.db.atomic():
                    LeaseRow.insert(name=self.name, **mine).execute()
                return True
            except pw.IntegrityError:
                return False

    def renew(self) -> bool:
        """Extend a lease we hold and that has not lapsed; False when it is no longer ours."""
        now = self._now()
        n = (
            LeaseRow.update(heartbeat_real=now, expires_real=now + self.ttl)
            .where((LeaseRow.name == self.name) & (LeaseRow.holder == self.id) & (LeaseRow.expires_real >= now))
            .execute()
        )
        return n == 1

    @contextmanager
    def fenced(self) -> Iterator[None]:
        """A transaction in which this engine may write: raises LeaseLost (and writes nothing)
        when the lease is no longer ours. On PostgreSQL the renewal locks the lease row until
        commit, and on SQLite the transaction holds the write lock: no successor can take the
        lease half-way through."""
        with self.db.atomic():
            if not self.renew():
                raise LeaseLost(f"the {self.name} lease is no longer held by {self.host}:{self.pid}")
            yield

    def release(self) -> None:
        """Hand the lease back so a standby takes over at once rather than after `ttl`."""
        LeaseRow.delete().where((LeaseRow.name == self.name) & (LeaseRow.holder == self.id)).execute()

    def holder(self) -> Holder | None:
        return current_holder(self.name, self._now())


def current_holder(name: str = "engine", now=None) -> Holder | None:
    """Who holds the lease now (by the database's clock unless `now` is given), or None."""
    if now is None:
        now = now_sql(LeaseRow._meta.database)
    row = LeaseRow.get_or_none((LeaseRow.name == name) & (LeaseRow.expires_real >= now))
    if row is None:
        return None
    return Holder(row.holder, row.host, row.pid, row.expires_real)
