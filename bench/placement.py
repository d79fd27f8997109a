"""Placement speed: 10,000 heterogeneous hosts, 100,000 containers, spread and binpack.
Prints one JSON object.

For each strategy: placements_per_s of the planner (cockpit.core.placement.place), reference_per_s
of the straightforward one-by-one implementation (cockpit.core.placement.reference: every host
rescored for every container), and identical (both plans are the same, container by container).
One core: numpy's thread pools are held to one thread.

Goal: at least 100,000 placements per second.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cockpit.core.placement import HostTable, Request, place  # noqa: E402
from cockpit.core.placement.reference import place_one_by_one  # noqa: E402
from cockpit.domain import Host, PlacementRules, Service, Traffic  # noqa: E402

HOSTS = 10_000
CONTAINERS = 100_000
HARDWARE = [(12, 16, 600), (32, 32, 1200), (32, 128, 24000), (16, 32, 200), (64, 256, 4000)]


def platform(seed: int = 1) -> tuple[HostTable, Service]:
    rng = np.random.default_rng(seed)
    hosts = []
    for i in range(HOSTS):
        c, m, d = HARDWARE[rng.integers(len(HARDWARE))]
        hosts.append(Host(i + 1, f"h{i:05d}", "idc-a", "pool", "g", f"hw{c}", c, m, d,
                          {"role": "web"}, "physical", None, "owned", 0.0, alive=bool(rng.random() > 0.01)))
    web = Service("web", "http", "web:1", "pool", 1.0, 2.0, 10.0, (), {}, Traffic(1, 1), PlacementRules())
    table = HostTable.build(hosts, [web])
    # hosts are not empty: what is already there differs from host to host
    table.cpu_used = (table.cpu_cap * rng.uniform(0, 0.6, HOSTS)).astype(np.int64) // 500 * 500
    table.mem_used = (table.mem_cap * rng.uniform(0, 0.6, HOSTS)).astype(np.int64) // 1024 * 1024
    return table, web


def run(strategy: str) -> dict:
    table, web = platform()
    r = Request.for_service(web, CONTAINERS, pool="pool", strategy=strategy)
    fast_table = table.copy()
    t0 = time.perf_counter()
    fast = place(fast_table, r)
    fast_s = time.perf_counter() - t0
    ref_table = table.copy()
    t0 = time.perf_counter()
    ref = place_one_by_one(ref_table, r)
    ref_s = time.perf_counter() - t0
    return {
        "placed": fast.placed,
        "placements_per_s": round(fast.placed / fast_s),
        "reference_per_s": round(ref.placed / ref_s),
        "speedup": round(ref_s / fast_s, 1),
        "identical": bool(np.array_equal(fast.sequence(), ref.sequence())),
    }


def main() -> None:
    out = {"hosts": HOSTS, "containers": CONTAINERS}
    for strategy in ("spread", "binpack"):
        out[strategy] = run(strategy)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
