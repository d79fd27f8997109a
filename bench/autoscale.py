"""Autoscaling policies on the demo day. Prints one JSON object.

For each of 20 seeds, the demo trace (the demo world's daily curve with both peaks and a hot event
at three times normal traffic, at a minute the seed chooses) is replayed by `cockpit simulate`'s
code under each policy: `rules` (the world's rules), `hpa` (Kubernetes' target tracking at each
pool's target CPU) and `static_peak` (sized all day for yesterday's peak). Printed: the means of
violation_minutes (pool-minutes over the target CPU + 10 points), container_hours and actions;
the simulated days per second.

Goals: rules has at most half the violation minutes of hpa, at most 110% of its container-hours,
and at most 60% of the container-hours of static_peak.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit import world as world_mod  # noqa: E402
from cockpit.core.autoscale.simulate import POLICIES, simulate  # noqa: E402
from cockpit.core.autoscale.trace import demo_trace  # noqa: E402

SEEDS = range(20)


def main() -> None:
    w = world_mod.load(world_mod.DEMO_WORLD)
    runs: dict[str, list] = {p: [] for p in POLICIES}
    start = time.perf_counter()
    for seed in SEEDS:
        trace = demo_trace(w, seed)
        for p in POLICIES:
            runs[p].append(simulate(w, trace, p))
    wall = time.perf_counter() - start
    out = {}
    for p, rs in runs.items():
        out[p.replace("-", "_")] = {
            "violation_minutes": round(statistics.mean(r.violation_minutes for r in rs), 2),
            "container_hours": round(statistics.mean(r.container_hours for r in rs), 1),
            "actions": round(statistics.mean(r.actions for r in rs), 1),
            "cost": round(statistics.mean(r.cost for r in rs), 1),
            "longest_wait_s": round(max(r.longest_wait_s for r in rs), 1),
        }
    rules, hpa, static = out["rules"], out["hpa"], out["static_peak"]
    ratios = {
        "violations_vs_hpa": round(rules["violation_minutes"] / hpa["violation_minutes"], 3)
        if hpa["violation_minutes"] else None,
        "hours_vs_hpa": round(rules["container_hours"] / hpa["container_hours"], 3),
        "hours_vs_static_peak": round(rules["container_hours"] / static["container_hours"], 3),
    }
    goals = (rules["violation_minutes"] <= 0.5 * hpa["violation_minutes"]
             and ratios["hours_vs_hpa"] <= 1.10 and ratios["hours_vs_static_peak"] <= 0.60)
    print(json.dumps({"seeds": len(SEEDS), **out, **ratios,
                      "days_per_s": round(len(SEEDS) * len(POLICIES) / wall, 1), "goals_met": goals}))


if __name__ == "__main__":
    main()
