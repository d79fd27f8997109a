"""The outcome of placing one request: where each container went, and what could not go."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from cockpit.core.placement.filters import Screening, room, shortage
from cockpit.core.placement.request import Request
from cockpit.core.placement.table import MIB, MILLI, HostTable


@dataclass
class Plan:
    request: Request
    runs: list[tuple[int, int]]  # (host index, containers) in placement order
    screening: Screening
    full: np.ndarray  # host indices that passed the filters but had no room left at the end
    full_reasons: dict[int, str]  # why each of those could take no more
    too_small: str | None = None  # when no passing host could take one container even empty: why

    @property
    def placed(self) -> int:
        return sum(n for _, n in self.runs)

    @property
    def unplaced(self) -> int:
        return self.request.count - self.placed

    def per_host(self) -> dict[int, int]:
        """Host index -> containers, in the order hosts were first used."""
        out: dict[int, int] = {}
        for h, n in self.runs:
            out[h] = out.get(h, 0) + n
        return out

    def sequence(self) -> np.ndarray:
        """The host of every container in placement order: what "identical plans" compares."""
        if not self.runs:
            return np.zeros(0, dtype=np.int64)
        hosts, counts = zip(*self.runs)
        return np.repeat(np.array(hosts, dtype=np.int64), np.array(counts, dtype=np.int64))

    def reason(self, i: int) -> str | None:
        """Why host i took no (more) containers; None when it was not refused."""
        return self.screening.reason(i) or self.full_reasons.get(i)

    def why_unplaced(self) -> str | None:
        if self.unplaced <= 0:
            return None
        funnel = self.screening.funnel
        for (name, left), (_, before) in zip(funnel[1:], funnel):
            if left == 0:
                return (
                    f"placed {self.placed} of {self.request.count}: no host passes {name!r} "
                    f"(it removed the last {before} hosts)"
                )
        n_ok = funnel[-1][1]
        if self.too_small:
            return f"placed {self.placed} of {self.request.count}: {self.too_small}"
        kinds = Counter(r.split(" ", 1)[0] for r in self.full_reasons.values())
        short = ", ".join(f"{k} on {n}" for k, n in kinds.most_common())
        return (
            f"placed {self.placed} of {self.request.count}: the {n_ok} hosts that pass every filter "
            f"are full ({short or 'no room'})"
        )


def finish(t: HostTable, r: Request, col: int, screening: Screening, runs: list[tuple[int, int]]) -> Plan:
    """Wrap up a placement whose usage is already applied to `t` (reasons are read from it now,
    before a dependent plan changes it)."""
    left = room(t, r, col)
    full = np.flatnonzero(screening.feasible & (left == 0))
    reasons = {int(i): shortage(t, r, col, int(i)) for i in full}
    return Plan(r, runs, screening, full, reasons, _too_small(t, r, screening.feasible))


def _too_small(t: HostTable, r: Request, feasible: np.ndarray) -> str | None:
    """Why no passing host could take one such container even if it were empty, or None."""
    idx = np.flatnonzero(feasible)
    if not len(idx):
        return None
    fits = (t.cpu_cap[idx] >= r.cpu) & (t.mem_cap[idx] >= r.mem) & (t.disk_cap[idx] >= r.disk)
    if fits.any():
        return None
    return (f"no host is big enough: a container needs {r.cpu / MILLI:g} cores, {r.mem / MIB:g} GB memory, "
            f"{r.disk / MIB:g} GB disk; the largest passing hosts have {t.cpu_cap[idx].max() / MILLI:g} cores, "
            f"{t.mem_cap[idx].max() / MIB:g} GB memory, {t.disk_cap[idx].max() / MIB:g} GB disk")
