"""What the transfers of replication executions share: the bandwidth cap, turns on one blob at
one destination (across executions), what one execution fetched and placed, the manifests known
to be at each registry, and the spool of verified blobs on disk that later executions reuse,
kept under its size."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.backends.base import Manifest, Spooled

STOP_POLL_S = 0.2  # how often a running execution reads whether it was asked to stop

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
    stop_read_at: float = float("-inf")  # when stop_requested was last read from the store (monotonic)
    stop_asked: bool = False

    def stop_due(self, now: float) -> bool:
        """True when it is time to read stop_requested again (one reader at a time)."""
        with self.lock:
            if now - self.stop_read_at < STOP_POLL_S:
                return False
            self.stop_read_at = now
            return True


class KnownManifests:
    """Manifests known to be in a repository of a registry: read there while planning, or put
    there by this engine. A task copying one need not ask its source for it again (its bytes were
    checked against its digest when read). A plan is a snapshot, and so is this: entries are
    forgotten after `ttl_s`, and the least recently used go first past `max_bytes`."""

    def __init__(self, max_bytes: int = 64 << 20, ttl_s: float = 300.0, clock=time.monotonic):
        self.max_bytes, self.ttl_s, self.clock = max_bytes, ttl_s, clock
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[str, str, str], tuple[Manifest, float]] = OrderedDict()
        self._bytes = 0

    def add(self, registry: str, repo: str, manifest: Manifest) -> None:
        key = (registry, repo, manifest.digest)
        with self._lock:
            old = self._held.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0].body)
            self._held[key] = (manifest, self.clock())
            self._bytes += len(manifest.body)
            while self._bytes > self.max_bytes and self._held:
                _, (gone, _) = self._held.popitem(last=False)
                self._bytes -= len(gone.body)

    def get(self, registry: str, repo: str, digest: str) -> Manifest | None:
        key = (registry, repo, digest)
        with self._lock:
            entry = self._held.get(key)
            if entry is None:
                return None
            if self.clock() - entry[1] > self.ttl_s:
                del self._held[key]
                self._bytes -= len(entry[0].body)
                return None
            self._held.move_to_end(key)
            return entry[0]


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
