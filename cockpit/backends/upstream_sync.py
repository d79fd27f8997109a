"""Following each HTTP service's upstream members from discovery into the front door, as
nginx-upsync-module does: a blocking wait on discovery per service, every change pushed to the
front, each list dumped to a file so that a front started while discovery is down still gets the
last members it knew.

Works with any `Discovery` (etcd, Consul) and any `Front`. When discovery fails the front keeps
the last list; the sync logs one line and tries again with back-off.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cockpit.backends.discovery import Discovery, DiscoveryError, Member
from cockpit.backends.nginx_front import SERVICE_RE, Front, FrontError

log = logging.getLogger("cockpit.upstream_sync")

MAX_DUMP_BYTES = 1 << 20
MIN_ROUND_S = 0.05  # the shortest round of reading discovery and pushing to the front


class SyncStatus(NamedTuple):
    """What the front holds for one service, for the UI."""

    members: int  # how many members were last applied
    applied_at: float | None  # when (real time, seconds since the epoch); None: not yet
    error: str | None  # what stands in the way now, as one line; None when all is well


@dataclass
class _Service:
    name: str
    index: int | None = None  # discovery's index of `desired`; None: read afresh
    desired: list[Member] | None = None  # what discovery (or the dump) says
    applied: list[Member] | None = None  # what the front was seen to hold
    applied_at: float | None = None
    checked: float = 0.0  # monotonic time the front was last compared with `desired`
    dump_read: bool = False
    error: str | None = None


def _canon(members: Sequence[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (m.address, m.port))


class UpstreamSync:
    """One thread per service following `discovery` into `front`.

    `wait_s` bounds each blocking wait (and so how long a thread may outlive `stop()`);
    every `resync_s` the front is compared with discovery again, so a front that restarted
    empty (lua mode keeps members in memory) gets them back."""

    def __init__(self, discovery: Discovery, front: Front, services: Sequence[str], *,
                 dump_dir: Path | None = None, wait_s: float = 0.8, resync_s: float = 10.0,
                 max_backoff_s: float = 5.0, clock: Callable[[], float] = time.time):
        for s in services:
            if not SERVICE_RE.match(s):
                raise ValueError(f"upstream sync: service {s!r} is not a service name")
        self.discovery, self.front = discovery, front
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.wait_s, self.resync_s, self.max_backoff_s, self.clock = wait_s, resync_s, max_backoff_s, clock
        self._services = {s: _Service(s) for s in dict.fromkeys(services)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> UpstreamSync:
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()  # a fresh one: a thread of an earlier start() stays stopped
        for s in self._services:
            t = threading.Thread(target=self._follow, args=(self._services[s], self._stop),
                                 name=f"upstream-sync-{s}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop following; returns within `timeout_s`. A thread still inside a blocking wait
        then ends when the wait returns, and pushes nothing more."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def __enter__(self) -> UpstreamSync:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def status(self) -> dict[str, SyncStatus]:
        with self._lock:
            return {s.name: SyncStatus(len(s.applied or ()), s.applied_at, s.error) for s in self._services.values()}

    # one service's thread

    def _follow(self, svc: _Service, stop: threading.Event) -> None:
        backoff = 0.0
        while not stop.is_set():
            began = time.monotonic()
            problem = self._read(svc)
            if stop.is_set():
                return
            if svc.desired is not None:
                problem = self._apply(svc) or problem
            with self._lock:
                changed, svc.error = problem != svc.error, problem
            if problem:
                if changed:
                    log.warning("upstream sync %s: %s (keeping the last members, retrying)", svc.name, problem)
                backoff = min(max(backoff * 2, 0.2), self.max_backoff_s)
                stop.wait(backoff)
            else:
                if changed:
                    log.info("upstream sync %s: following again", svc.name)
                backoff = 0.0
                # a store that answers a wait at once (an index it does not know) must not spin us
                stop.wait(max(0.0, MIN_ROUND_S - (time.monotonic() - began)))

    def _read(self, svc: _Service) -> str | None:
        """The service's members from discovery into `svc.desired`; what went wrong, or None."""
        try:
            got = (self.discovery.members(svc.name) if svc.index is None
                   else self.discovery.wait_members(svc.name, svc.index, self.wait_s))
        except Exception as e:  # noqa: BLE001 - a discovery backend's fault must not end the thread
            svc.index = None  # read afresh once it is back
            if svc.desired is None and not svc.dump_read:
                svc.dump_read = True
                svc.desired = self._load_dump(svc.name)
            return _line(e)
        svc.index = got.index
        members = _canon(got.members)
        if members != svc.desired:
            svc.desired = members
            self._dump(svc.name, members, got.index)
        return None

    def _apply(self, svc: _Service) -> str | None:
        """Push `svc.desired` to the front when it differs from what the front was seen to hold,
        and every `resync_s` look again; what went wrong, or None."""
        due = time.monotonic() - svc.checked >= self.resync_s
        if svc.desired == svc.applied and not due:
            return None
        try:
            held = _canon(self.front.members(svc.name))
            if held != svc.desired:
                self.front.set_members(svc.name, svc.desired)
        except Exception as e:  # noqa: BLE001 - the front's fault must not end the thread
            return _line(e)
        svc.checked = time.monotonic()
        with self._lock:
            if svc.applied != svc.desired or svc.applied_at is None:
                svc.applied, svc.applied_at = list(svc.desired), self.clock()
        return None

    # the dump: each service's last list, as nginx-upsync-module's upsync_dump_path

    def _dump_path(self, service: str) -> Path | None:
        return self.dump_dir / f"{service}.json" if self.dump_dir is not None else None

    def _dump(self, service: str, members: list[Member], index: int) -> None:
        path = self._dump_path(service)
        if path is None:
            return
        doc = {"service": service, "index": index, "dumped_at": self.clock(),
               "members": {m.key: json.loads(m.value()) for m in members}}
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, path)
        except OSError as e:
            log.warning("upstream sync %s: cannot write the dump %s: %s", service, path, e)

    def _load_dump(self, service: str) -> list[Member] | None:
        path = self._dump_path(service)
        if path is None or not path.exists():
            return None
        try:
            if path.stat().st_size > MAX_DUMP_BYTES:
                raise ValueError(f"larger than {MAX_DUMP_BYTES} bytes")
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict) or doc.get("service") != service or not isinstance(doc.get("members"), dict):
                raise ValueError(f"not the dump of {service}")
            members = _canon(Member.parse(k, json.dumps(v)) for k, v in doc["members"].items())
        except (OSError, ValueError, TypeError) as e:
            log.warning("upstream sync %s: the dump %s is unusable: %s", service, path, e)
            return None
        log.info("upstream sync %s: discovery is unreachable, using the %d members dumped in %s",
                 service, len(members), path)
        return members


def _line(e: Exception) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, (DiscoveryError, FrontError)):
        return text
    return f"{type(e).__name__}: {text}"
