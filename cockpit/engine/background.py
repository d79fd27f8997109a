"""A queue worked in a thread of its own beside the engine's jobs (the ECS drainer, the
replicator): started and stopped with the lease, nudged when new work is written."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class Background(ABC):
    """`start()` runs `_loop()` in a daemon thread named THREAD; `kick()` wakes a loop that waits
    on `_wake`; `stop()` asks it to end (`_stop`) and waits for it."""

    THREAD = "background"

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._before_start()
            self._stop.clear()
            t = threading.Thread(target=self._loop, name=self.THREAD, daemon=True)
            t.start()
            self._thread = t  # only once started: a stop() from another thread joins a running thread

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def ending(self) -> bool:
        """Asked to stop, or its store is no longer the one this process works on (the models'
        proxy was pointed at another store: a loop left running would write into that one)."""
        from cockpit.store.models import proxy

        db = getattr(self, "db", None)
        return self._stop.is_set() or (db is not None and proxy.obj is not db)

    def kick(self) -> None:
        """New work may be waiting: look now."""
        self._wake.set()

    def _before_start(self) -> None:
        """On the caller's thread, before the loop starts (recovering what a dead engine left)."""

    @abstractmethod
    def _loop(self) -> None:
        """The thread's work, until `_stop` is set."""
