"""Scheduling managers: per IDC one active manager and standbys, elected through a lock with a
lease in the discovery store (`scheduler/<idc>`), as the seed's Roam ran them. Only the IDC's
active manager carries its flows forward; when it dies its lock lapses after `ttl_s`, a standby
takes it and goes on from the flow's state in the store (a step done is never done again; a call
left half-made is made again under its key)."""

from __future__ import annotations

import logging
import time

from cockpit.backends.discovery import DiscoveryError
from cockpit.engine.background import Background
from cockpit.engine.lease import LeaseLost

log = logging.getLogger(__name__)
LOCK_TTL_S = 4.0


class Managers:
    """This engine's candidacy for each IDC's scheduling manager."""

    def __init__(self, discovery, idcs: list[str], holder: str, ttl_s: float = LOCK_TTL_S):
        self.discovery = discovery
        self.holder = holder
        self.ttl_s = ttl_s
        self.locks = {idc: discovery.lock(f"scheduler/{idc}", holder, ttl_s) for idc in idcs}
        self.held: set[str] = set()
        self.error: str | None = None

    def step(self) -> set[str]:
        """Renew what is held, try for what is free; the IDCs this engine manages now. With the
        discovery store away, nothing is held (a manager that cannot renew is no longer sure)."""
        held = set()
        try:
            for idc, lock in self.locks.items():
                if (lock.renew() if idc in self.held else False) or lock.acquire():
                    held.add(idc)
            self.error = None
        except DiscoveryError as e:
            self.error = f"scheduling managers: {e}"
            held = set()
        for idc in sorted(held - self.held):
            log.info("scheduling manager for %s: active (%s)", idc, self.holder)
        self.held = held
        return held

    def release(self) -> None:
        for idc in list(self.held):
            try:
                self.locks[idc].release()
            except DiscoveryError:
                pass  # it lapses by itself
        self.held = set()

    def who(self) -> dict[str, str | None]:
        """Each IDC's active manager, for the views."""
        out = {}
        for idc in self.locks:
            try:
                out[idc] = self.discovery.lock_holder(f"scheduler/{idc}")
            except DiscoveryError:
                out[idc] = None
        return out


class FlowLoop(Background):
    """The flows, worked in a thread beside the tick by the IDCs' active managers."""

    THREAD = "flows"

    def __init__(self, db, runner, managers: Managers, every_s: float = 0.2, dead_hosts=None, health=None):
        super().__init__()
        self.health = health  # engine/health.py: whether the discovery store answers
        self.db = db
        self.runner = runner
        self.managers = managers
        self.every_s = every_s
        self.dead_hosts = dead_hosts  # hosts that went down, followed in discovery
        self.last_error: str | None = None

    def _before_start(self) -> None:
        self.runner.recover()

    def _loop(self) -> None:
        while not self.ending():
            moved = False
            try:
                held = self.managers.step()
                if self.health is not None:
                    self.health.seen("discovery", getattr(self.managers.discovery, "who", "simulated"),
                                     self.managers.error)
                if held:
                    moved = self.runner.run(held)
                if self.dead_hosts is not None:
                    self.dead_hosts.step()
                self.last_error = self.managers.error
            except LeaseLost:  # the engine's heartbeat sees it too and stands the engine by
                break
            except Exception as e:  # noqa: BLE001 - a store error: say it, try again
                self.last_error = f"flows: {type(e).__name__}: {e}"
                log.exception("flow loop")
                time.sleep(0.5)
            if not moved:
                self._wake.wait(self.every_s)
                self._wake.clear()
        self.managers.release()
        self.runner.close()
