"""One active engine per database: a lease row kept alive by heartbeats.

The holder renews before every write it makes (see Engine.tick), so a process that stalled past
its lease and lost it cannot write over its successor. A lease whose holder died without
handing it back lapses after `ttl` seconds and any standby takes it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw

from cockpit.store.models import LeaseRow


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
        ttl: float = 6.0,
        clock: Callable[[], float] = time.time,
    ):
        self.db = db
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def acquire(self) -> bool:
        """Take the lease if it is free or lapsed, or renew it if it is ours. True while we hold it."""
        if self.renew():
            return True
        now = self.clock()
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
        """Extend a lease we hold; False when it is no longer ours (we must stop writing)."""
        now = self.clock()
        n = (
            LeaseRow.update(heartbeat_real=now, expires_real=now + self.ttl)
            .where((LeaseRow.name == self.name) & (LeaseRow.holder == self.id))
            .execute()
        )
        return n == 1

    def release(self) -> None:
        """Hand the lease back so a standby takes over at once rather than after `ttl`."""
        LeaseRow.delete().where((LeaseRow.name == self.name) & (LeaseRow.holder == self.id)).execute()

    def holder(self) -> Holder | None:
        return current_holder(self.clock(), self.name)


def current_holder(now: float, name: str = "engine") -> Holder | None:
    """Who holds the lease now, or None when it is free or lapsed."""
    row = LeaseRow.get_or_none(LeaseRow.name == name)
    if row is None or row.expires_real < now:
        return None
    return Holder(row.holder, row.host, row.pid, row.expires_real)
