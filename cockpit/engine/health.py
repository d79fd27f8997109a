"""How each backend answered last: the store, the cloud API, the container engines, the
discovery store, the registries.

The engine's threads note every answer (`ok`) and every failure to answer (`failed`, with the
backend's own one-line words: "no answer within 3 s", "connection refused"). The engine keeps
this in memory, so a Cockpit running the engine can say what is wrong even while the store
itself does not answer, and writes what changed with each tick, so viewers in other processes
see it too (BackendRow). A backend that fails is shown with the age of its last good answer:
that is how old the data it feeds is. Pure of Textual; the store is only touched by `flush`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

KINDS = ("store", "cloud", "engine", "discovery", "registry")
TITLE = {"store": "store", "cloud": "cloud API", "engine": "container engine", "discovery": "discovery store",
         "registry": "registry"}
# What stands still while it does not answer, and what to look at: said beside the error.
EFFECT = {
    "store": "nothing is saved or read; actions fail and can be asked again",
    "cloud": "ECS orders wait and are retried; check the endpoint and the cloud's status",
    "engine": "its host is marked down; its containers are not counted; check dockerd on it",
    "discovery": "flows and scheduling managers wait; check the etcd/Consul endpoint",
    "registry": "replications to and from it wait and are retried; check the registry",
}


@dataclass(frozen=True)
class BackendState:
    kind: str
    name: str
    ok: bool
    ok_real: float | None  # its last good answer (None: never, since the engine started)
    since_real: float | None  # failing since
    error: str | None
    checked_real: float

    def age(self, now: float) -> float | None:
        """How old what it last told us is."""
        return None if self.ok_real is None else max(0.0, now - self.ok_real)

    def describe(self, now: float) -> str:
        """One line an SRE can act on."""
        who = f"{TITLE.get(self.kind, self.kind)} {self.name}"
        if self.ok:
            return f"{who}: answering"
        age = self.age(now)
        since = f" for {span(now - self.since_real)}" if self.since_real is not None else ""
        parts = [f"{who}: not answering{since} ({self.error or 'no answer'})"]
        if age is not None:
            parts.append(f"what it last said is {span(age)} old")
        elif self.since_real is not None:
            parts.append("no answer since the engine started")
        return "; ".join([*parts, EFFECT.get(self.kind, "")]).rstrip("; ")


def span(s: float) -> str:
    s = max(0.0, s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class Health:
    """The engine's memory of its backends (thread-safe: every engine thread notes here)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], BackendState] = {}
        self._changed: set[tuple[str, str]] = set()

    def ok(self, kind: str, name: str) -> None:
        now = self.clock()
        with self._lock:
            old = self._states.get((kind, name))
            self._states[(kind, name)] = BackendState(kind, name, True, now, None, None, now)
            if old is None or not old.ok:
                self._changed.add((kind, name))

    def failed(self, kind: str, name: str, error: str) -> None:
        now = self.clock()
        error = " ".join(str(error).split())[:300]
        with self._lock:
            old = self._states.get((kind, name))
            if old is not None and not old.ok:
                self._states[(kind, name)] = replace(old, error=error, checked_real=now)
            else:
                self._states[(kind, name)] = BackendState(kind, name, False, old.ok_real if old else None, now,
                                                          error, now)
            self._changed.add((kind, name))

    def seen(self, kind: str, name: str, error: str | None) -> None:
        if error:
            self.failed(kind, name, error)
        else:
            self.ok(kind, name)

    def states(self) -> list[BackendState]:
        with self._lock:
            return sorted(self._states.values(), key=order)

    def take_changed(self) -> list[BackendState]:
        """What changed since the last take: to write (give it back with `unflushed` if that fails)."""
        with self._lock:
            changed = [self._states[k] for k in sorted(self._changed)]
            self._changed.clear()
        return changed

    def unflushed(self, states: list[BackendState]) -> None:
        with self._lock:
            self._changed.update((s.kind, s.name) for s in states)


def write(states: list[BackendState]) -> None:
    """Upsert these (in the caller's fenced transaction)."""
    from cockpit.store.models import BackendRow

    for s in states:
        values = {"ok": s.ok, "ok_real": s.ok_real, "since_real": s.since_real, "error": s.error,
                  "checked_real": s.checked_real}
        BackendRow.insert(kind=s.kind, name=s.name, **values).on_conflict(
            conflict_target=[BackendRow.kind, BackendRow.name], update=values).execute()


def order(s: BackendState) -> tuple:
    """Failing first, then by kind (a kind a newer engine wrote last), then name."""
    return (s.ok, KINDS.index(s.kind) if s.kind in KINDS else len(KINDS), s.name)


def unchecked(b: BackendState) -> BackendState:
    """A stored state no engine is checking any more: not answering as far as anyone knows now."""
    was = "answering" if b.ok else f"not answering ({b.error})"
    return replace(b, ok=False, since_real=None, error=f"not checked: no engine is active; it was {was}")


def stored() -> list[BackendState]:
    """What the active engine last wrote (a viewer's look)."""
    from cockpit.store.models import BackendRow

    return [BackendState(r.kind, r.name, r.ok, r.ok_real, r.since_real, r.error, r.checked_real)
            for r in BackendRow.select().order_by(BackendRow.ok, BackendRow.kind, BackendRow.name)]
