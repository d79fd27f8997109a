"""Initialising new hosts, a batch at a time, and recording each host's status.

Hundreds of hosts report progress at once; their events go through one queue to one writer
thread that commits them in batches, rather than through hundreds of concurrent writers.
Statuses: pending -> initialising -> ready | failed | timed_out. A failure keeps its task and
message; a failed host can be retried. Hosts an engine was initialising when it died go back to
pending when the next one starts, so no host is left without a status.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import peewee as pw

from cockpit.backends.base import HostInit, InitEvent, InitTarget
from cockpit.engine import journal
from cockpit.engine.lease import LeaseLost
from cockpit.store.db import bump_version
from cockpit.store.models import HostRow

log = logging.getLogger(__name__)
_STOP = object()
RETRY_S = 0.5  # a status write the store failed: tried again this soon


class StatusWriter:
    """The one writer of host statuses. It writes inside the engine's fence: once the lease is
    gone its events are dropped (the next engine starts those hosts again)."""

    def __init__(self, db: pw.Database, fence: Callable[[], AbstractContextManager] | None = None,
                 platform_now: Callable[[], float] = time.time):
        self.db = db
        self.fence = fence or db.atomic
        self.platform_now = platform_now
        self._q: queue.Queue = queue.Queue()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()

    def put(self, ev: InitEvent) -> None:
        if not self._stopped:  # after the engine lost its lease, nobody writes them
            self._q.put(ev)

    def flush(self) -> None:
        """Return once everything put so far is in the store (or dropped, once stopped)."""
        if not self._stopped:
            self._q.join()

    def stop(self) -> None:
        self._stopped = True
        self._q.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            batch = [first]
            while len(batch) < 500:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if e is not _STOP]
            try:
                if events:
                    self._write_when_it_can(events)
            finally:
                for _ in batch:
                    self._q.task_done()
            if any(e is _STOP for e in batch):
                return

    def _write_when_it_can(self, events: list[InitEvent]) -> None:
        """A store that fails the write (locked, restarted) keeps the events: they are written
        once it answers, or a host would stay initialising for good. Only a lost lease or a stop
        drops them (the next engine starts those hosts again)."""
        while True:
            try:
                self._write(events)
                return
            except LeaseLost:
                log.warning("status writer: %d events dropped: the engine lease is gone", len(events))
                return
            except pw.PeeweeException as e:
                if self._stopped:
                    log.warning("status writer: %d events dropped on stopping: %s", len(events), e)
                    return
                log.warning("status writer: %d events not written yet (%s: %s); trying again",
                            len(events), type(e).__name__, e)
                time.sleep(RETRY_S)

    def _write(self, events: list[InitEvent]) -> None:
        t = self.platform_now()
        ready = False
        with self.fence():
            for ev in events:
                fields = {"status": ev.status, "init_task": ev.task}
                if ev.status in ("failed", "timed_out"):
                    fields["status_detail"] = ev.message
                elif ev.status == "ready":
                    fields.update(status_detail=None, init_task=None)
                HostRow.update(**fields).where(HostRow.name == ev.host).execute()
                if ev.status == "ready":
                    ready = True
                if ev.status in ("failed", "timed_out"):
                    journal.event(t, "error", "init", ev.host,
                                  f"host {ev.host} initialisation {ev.status.replace('_', ' ')} at '{ev.task}': {ev.message}")
            if ready:  # new capacity: the engine and the planner count it from now on
                bump_version()


class InitRunner:
    def __init__(
        self,
        db: pw.Database,
        backend: HostInit,
        writer: StatusWriter,
        fence: Callable[[], AbstractContextManager] | None = None,
        *,
        batch: int = 20,
        timeout_s: float = 600.0,
        target: Callable[[HostRow], InitTarget] | None = None,
    ):
        self.db = db
        self.backend = backend
        self.writer = writer
        self.fence = fence or db.atomic
        self.batch = batch
        self.timeout_s = timeout_s
        self.target = target or (lambda h: InitTarget(h.name, None, {}))
        self._busy = threading.Lock()
        self._stop = threading.Event()

    def stop(self) -> None:
        """The engine lost its lease: end the batch that runs (its successor starts those hosts again)."""
        self._stop.set()

    def recover(self) -> int:
        """Hosts left initialising by an engine that died start again."""
        with self.fence():
            return HostRow.update(status="pending", init_task=None).where(HostRow.status == "initialising").execute()

    def kick(self) -> bool:
        """Start a batch if none is running and hosts are pending. True when one started. The
        batch is claimed (initialising) in a fenced transaction before anything runs."""
        if not self._busy.acquire(blocking=False):
            return False
        try:
            with self.fence():
                hosts = list(HostRow.select().where((HostRow.status == "pending") & HostRow.released_t.is_null())
                             .order_by(HostRow.id).limit(self.batch))
                if hosts:
                    HostRow.update(status="initialising", init_task="queued").where(
                        HostRow.id.in_([h.id for h in hosts])).execute()
        except (pw.PeeweeException, LeaseLost):
            self._busy.release()
            raise
        if not hosts:
            self._busy.release()
            return False
        threading.Thread(target=self._run, args=(hosts,), name="init-batch", daemon=True).start()
        return True

    def run_now(self) -> None:
        """Initialise every pending host, batch after batch, in this thread (tests and the CLI)."""
        while self.kick():
            with self._busy:
                pass

    def _run(self, hosts: list[HostRow]) -> None:
        last: dict[str, InitEvent] = {}
        final: set[str] = set()

        def emit(ev: InitEvent) -> None:
            last[ev.host] = ev
            if ev.final:
                final.add(ev.host)
            self.writer.put(ev)

        try:
            self.backend.run([self.target(h) for h in hosts], emit, self.timeout_s, self._stop)
        except Exception as e:  # noqa: BLE001 - the backend broke: every host of the batch says so
            log.exception("initialisation backend failed")
            for h in hosts:
                if h.name not in final:
                    emit(InitEvent(h.name, "failed", last.get(h.name, InitEvent(h.name, "")).task, f"{type(e).__name__}: {e}"))
        for h in hosts:
            if h.name not in final and not self._stop.is_set():
                task = last[h.name].task if h.name in last else None
                self.writer.put(InitEvent(h.name, "timed_out", task, f"no result within {self.timeout_s:g} s"))
        self.writer.flush()
        self._busy.release()
