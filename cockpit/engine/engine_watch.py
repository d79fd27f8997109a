"""Real container engines, watched from a thread of their own: each host's engine is pinged and
its containers sampled every few seconds, side by side, each call bounded by the runtime's
timeout. The tick and the autoscaler read the last answers and never wait on an engine, so an
engine that is down or slow marks its host (with why) and never holds up the engine or the UI.

What is read here:
- `EngineHealth` (a HostHealth): hosts whose engine stopped answering go down, with the reason;
  they come back when it answers again;
- `cpu_by_service`: the CPU each service's containers use, of what they reserve, for the
  autoscaler's observations;
- `cpu_by_host`: cores in use per host, for the dashboard's CPU.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cockpit.backends.base import ContainerError
from cockpit.core.failures import HealthChange
from cockpit.engine.background import Background

log = logging.getLogger(__name__)
RECHECK_S = 60.0  # a host marked down is looked at again (by the watch, every round) at least this often


@dataclass(frozen=True)
class HostSeen:
    ok: bool
    reason: str | None  # why the engine did not answer
    real_t: float  # when it was last asked
    cores_used: float = 0.0  # the sum of its containers' CPU, in cores


class EngineWatch(Background):
    THREAD = "engine-watch"

    def __init__(self, runtime, hosts: Callable[[], list[str]], every_s: float = 2.0, clock=time.time, health=None):
        super().__init__()
        self.backend_health = health  # engine/health.py: each host's engine, answering or not
        self.runtime = runtime
        self.hosts = hosts
        self.every_s = every_s
        self.clock = clock
        self.seen: dict[str, HostSeen] = {}
        self.containers: dict[str, tuple[str, float]] = {}  # name -> (service, cpu % of one core)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="engine-probe")

    def _before_start(self) -> None:
        if self._pool._shutdown:  # started again after a stop
            self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="engine-probe")

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.round()
            except Exception:  # noqa: BLE001 - the watch must go on; the next round tries again
                log.exception("engine watch")
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))
        self._pool.shutdown(wait=False, cancel_futures=True)

    def round(self) -> None:
        """Ask every host's engine once, side by side."""
        names = list(self.hosts())
        answers = list(self._pool.map(self._ask, names))
        containers = {}
        for name, (seen, stats) in zip(names, answers):
            self.seen[name] = seen
            containers.update(stats)
            if self.backend_health is not None:
                self.backend_health.seen("engine", name, None if seen.ok else (seen.reason or "no answer"))
        self.containers = containers

    def _ask(self, host: str) -> tuple[HostSeen, dict]:
        now = self.clock()
        why = self.runtime.probe(host)
        if why:
            return HostSeen(False, why, now), {}
        try:
            stats = self.runtime.stats(host)
        except ContainerError as e:
            return HostSeen(False, e.message, now), {}
        used = sum((s.cpu_pct or 0.0) for s in stats) / 100.0
        return HostSeen(True, None, now, used), {s.name: (s.service, s.cpu_pct or 0.0) for s in stats}

    def cpu_by_service(self, reserved: dict[str, float]) -> dict[str, float]:
        """Each service's CPU in use, as a share (0..100) of the cores its running containers
        reserve (`reserved`: cores per container), from the last round."""
        used: dict[str, list[float]] = {}
        for service, pct in self.containers.values():
            used.setdefault(service, []).append(pct)
        return {s: min(100.0, sum(v) / (len(v) * reserved[s])) for s, v in used.items() if reserved.get(s)}

    def cpu_by_host(self) -> dict[str, float]:
        return {h: s.cores_used for h, s in self.seen.items() if s.ok}


class EngineHealth:
    """Host health from the engines' answers: a host whose engine does not answer is down (the
    reason said in the event), and up again once it answers."""

    def __init__(self, watch: EngineWatch, names: Callable[[], list[str]]):
        self.watch = watch
        self.names = names

    def poll(self, alive: np.ndarray, down_until: np.ndarray, now: float, dt: float) -> HealthChange:
        names = self.names()
        down, up, reasons = [], [], {}
        until = down_until.copy()
        for i, name in enumerate(names):
            seen = self.watch.seen.get(name)
            if seen is None:
                continue  # not asked yet: as it was
            if alive[i] and not seen.ok:
                down.append(i)
                until[i] = now + RECHECK_S
                reasons[i] = seen.reason or "the engine does not answer"
            elif not alive[i] and seen.ok:
                up.append(i)
                until[i] = np.nan
            elif not alive[i]:
                until[i] = now + RECHECK_S
        return HealthChange(np.array(down, dtype=np.int64), np.array(up, dtype=np.int64), until, reasons)


def scope_cpu(rows: list, hosts: list, alive: np.ndarray, used: dict[str, float]) -> list:
    """The dashboard's rows with CPU measured on the engines: each scope's cores in use over the
    cores of its alive hosts."""
    from dataclasses import replace

    totals: dict[str, list[float]] = {}
    for h, ok in zip(hosts, alive.tolist()):
        if not ok:
            continue
        for scope in ("all", h.idc, f"{h.idc}/{h.pool}"):
            t = totals.setdefault(scope, [0.0, 0.0])
            t[0] += used.get(h.name, 0.0)
            t[1] += h.cores
    return [replace(r, cpu_pct=100.0 * totals[r.scope][0] / totals[r.scope][1])
            if r.scope in totals and totals[r.scope][1] else r for r in rows]
