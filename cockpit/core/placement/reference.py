"""The plain statement of what placement means: one container at a time, every host rescored.

Too slow for production (each container rescans every host) and kept for exactly that reason:
it is obviously right, and the fast planner in `greedy` must produce the same plan. Tests and
`bench/placement.py` compare the two.
"""

from __future__ import annotations

import numpy as np

from cockpit.core.placement.filters import room, screen
from cockpit.core.placement.plan import Plan, finish
from cockpit.core.placement.request import Request
from cockpit.core.placement.scorers import jitter, vector_keys
from cockpit.core.placement.table import HostTable


def place_one_by_one(t: HostTable, r: Request) -> Plan:
    col = t.column(r.service)
    s = screen(t, r)
    u = np.random.default_rng(r.seed).random(max(r.count, 0)) if r.strategy == "random" else None
    jit = jitter(len(t), r.seed) if r.strategy == "custom" else None
    runs: list[tuple[int, int]] = []
    for i in range(max(r.count, 0)):
        fits = s.feasible & (room(t, r, col) > 0)
        if not fits.any():
            break
        if u is not None:
            options = np.flatnonzero(fits)
            h = int(options[min(int(u[i] * len(options)), len(options) - 1)])
        else:
            keys = vector_keys(t, r, jit)
            keys[~fits] = np.inf
            h = int(np.argmin(keys))  # the first minimum: ties go to the lower index
        t.cpu_used[h] += r.cpu
        t.mem_used[h] += r.mem
        t.disk_used[h] += r.disk
        t.counts[h, col] += 1
        if runs and runs[-1][0] == h:
            runs[-1] = (h, runs[-1][1] + 1)
        else:
            runs.append((h, 1))
    return finish(t, r, col, s, runs)
