"""What the transfers of replication executions share: the bandwidth cap, turns on one blob at
one destination (across executions), what one execution fetched and placed, and the spool of
verified blobs on disk that later executions reuse, kept under its size."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.backends.base import Spooled

class Stopped(Exception):
    """The execution was asked to stop."""


class TokenBucket:
    """A bandwidth cap shared by an execution's transfers (bytes a second)."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep, clock=time.monotonic):
        self.rate, self.sleep, self.clock = rate, sleep, clock
        self._lock = threading.Lock()
        self._free_at = clock()

    def take(self, n: int) -> None:
        """Wait until these n bytes fit under the cap (their own time included, so a transfer
        of size S takes S / rate, not one chunk less)."""
        with self._lock:
            start = max(self._free_at, self.clock())
            self._free_at = start + n / self.rate
            wait = self._free_at - self.clock()
        if wait > 0:
            self.sleep(wait)


class Turns:
    """Locks by key, made when first wanted and dropped when nobody holds or waits for them:
    transfers of one blob to one destination take turns, whichever execution they belong to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, ...], list] = {}  # key -> [lock, holders and waiters]

    @contextmanager
    def turn(self, key: tuple[str, ...]) -> Iterator[None]:
        with self._lock:
            entry = self._held.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[key]


@dataclass
class Run:
    """What one execution shares among its transfers."""

    id: int
    spool: Path
    limiter: TokenBucket | None
    fetched: dict[str, Spooled] = field(default_factory=dict)
    placed: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (destination, blob) -> repositories
    lock: threading.Lock = field(default_factory=threading.Lock)


PART_STALE_S = 600  # a download not written to for this long belongs to an engine that died


def prune_spool(spool: Path, max_bytes: int, now: float | None = None) -> None:
    """Remove the least recently used blobs until the spool holds at most max_bytes; half-written
    downloads (.part-*) go once nothing has written to them for PART_STALE_S (another execution
    may be writing one now)."""
    now = time.time() if now is None else now
    try:
        entries = [(e.stat().st_mtime, e.stat().st_size, e.path, e.name) for e in os.scandir(spool) if e.is_file()]
    except OSError:
        return
    total = 0
    for mtime, size, path, name in sorted(entries, reverse=True):
        if name.startswith(".part-"):
            stale = now - mtime > PART_STALE_S
        else:
            total += size
            stale = total > max_bytes
        if stale:
            try:
                os.unlink(path)
            except OSError:
                pass
