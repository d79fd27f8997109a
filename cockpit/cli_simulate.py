"""`cockpit simulate [--trace FILE] [--policy rules|hpa|static-peak] [--seed S] [--json]`: a day
replayed through the autoscaling rules, much faster than real time, against an HPA and static
peak capacity. A read of the world file only: nothing changes. Exit 0, or 2 on bad input."""

from __future__ import annotations

import argparse
import json
import sys

from cockpit import cli_args as arg
from cockpit.config import Config

EXIT_BAD_INPUT = 2


def add_parser(sub) -> argparse.ArgumentParser:
    from cockpit.cli import _common  # here, not at the top: cli imports this module

    from cockpit.core.autoscale.rules import POLICIES  # not simulate's module: that one needs numpy

    sp = sub.add_parser("simulate", help="replay a day through the autoscaling rules, against an HPA and static "
                                         "peak capacity")
    _common(sp, suppress=True)
    sp.add_argument("--trace", type=arg.path, metavar="FILE",
                    help="the day's traffic (YAML or JSON; default: the world's daily curve with a hot event at 3x)")
    sp.add_argument("--policy", choices=POLICIES, action="append", default=[],
                    help="the policy to replay (repeatable; default: all three)")
    sp.add_argument("--seed", type=arg.seed, default=0, metavar="S",
                    help="the demo trace's noise and its hot event's minute (default 0)")
    sp.add_argument("--decisions", action="store_true", help="also list every scaling decision, explained")
    sp.add_argument("--json", action="store_true", help="one JSON object")
    return sp


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit import world as world_mod
    from cockpit.core.autoscale.simulate import POLICIES, simulate
    from cockpit.core.autoscale.trace import demo_trace, describe
    from cockpit.trace_file import load_trace

    from cockpit.session import world_path

    w = world_mod.load(world_path(cfg))
    trace = load_trace(args.trace, w) if args.trace else demo_trace(w, args.seed)
    results = [simulate(w, trace, p) for p in (args.policy or POLICIES)]
    tz = w.traffic.tz
    if args.json:
        out = {"world": w.name, "trace": describe(trace, tz), "seed": args.seed,
               "policies": {r.policy: r.summary() | ({"decisions": [d.as_json() for d in r.decisions]}
                                                     if args.decisions else {}) for r in results}}
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"{w.name}: {describe(trace, tz)}")
    print(f"{'POLICY':<12} {'SLO MIN':>8} {'CTR-HOURS':>11} {'COST':>10} {'ACTIONS':>8} {'LONGEST WAIT':>13}")
    for r in results:
        print(f"{r.policy:<12} {r.violation_minutes:>8} {r.container_hours:>11,.0f} {r.cost:>10,.0f} {r.actions:>8} "
              f"{r.longest_wait_s / 60:>10.0f} min" + (f"  ({r.unplaced} containers found no capacity)" if r.unplaced else ""))
    if args.decisions:
        from datetime import datetime

        for r in results:
            print(f"\n{r.policy}:")
            for d in r.decisions:
                print(f"  {datetime.fromtimestamp(d.t, tz):%H:%M} {d.explain()}")
    return 0
