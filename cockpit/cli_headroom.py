"""`cockpit headroom (--idc X | --pool P | --hardware H) [--at now|peak] [--json]`: could the rest of
the platform absorb the containers of a lost IDC, pool or hardware class, and what would it take?
A read: nothing changes. Exit 0 with the answer (absorbed or not), 2 on bad input."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from cockpit import cli_args as arg
from cockpit.config import Config

EXIT_BAD_INPUT = 2


def add_parser(sub) -> argparse.ArgumentParser:
    """The `headroom` subcommand on `sub` (the top-level subparsers)."""
    from cockpit.cli import _common  # here, not at the top: cli imports this module

    hr = sub.add_parser("headroom", help="what if an IDC, a pool or a hardware class were lost: could the rest "
                                         "absorb its containers, and what would it take?")
    _common(hr, suppress=True)
    lose = hr.add_mutually_exclusive_group(required=True)
    lose.add_argument("--idc", type=arg.name, metavar="IDC", help="lose every host of this IDC")
    lose.add_argument("--pool", type=arg.name, metavar="POOL", help="lose every host of this pool")
    lose.add_argument("--hardware", type=arg.name, metavar="CLASS", help="lose every host of this hardware class")
    hr.add_argument("--at", choices=("now", "peak"), default="now",
                    help="the demand now, or at tonight's peak (containers scaled with traffic)")
    hr.add_argument("--json", action="store_true", help="one JSON object")
    return hr


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.core.headroom import HeadroomError
    from cockpit.engine.facade_headroom import headroom
    from cockpit.session import open_session

    kind = next(k for k in ("idc", "pool", "hardware") if getattr(args, k, None))
    s = open_session(cfg, engine=False, reset=False)
    try:
        try:
            v = headroom(s.cockpit, kind, getattr(args, kind), args.at)
        except HeadroomError as e:
            print(f"cockpit headroom: error: {arg.one_line(str(e))}", file=sys.stderr)
            return EXIT_BAD_INPUT
    finally:
        s.close()
    if args.json:
        local = datetime.fromtimestamp(v.t, s.world.traffic.tz).isoformat()
        json.dump({"world": s.world.name, "local_time": local, **v.as_json()}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(text(v, s.world.traffic.tz))
    return 0


def text(v, tz) -> str:
    when = datetime.fromtimestamp(v.t, tz).strftime("%Y-%m-%d %H:%M")
    verdict = "absorbed" if v.absorbed else f"NOT absorbed: {v.unplaced} containers do not fit"
    lines = [f"losing {v.loss} ({len(v.lost_hosts)} hosts) {'now' if v.at == 'now' else 'at the peak'}, "
             f"{when}: {verdict}",
             f"{'SERVICE':<12} {'POOL':<9} {'RUN':>5} {'LOST':>5} {'NEED':>5} {'PLACE':>6} {'PLACED':>6} "
             f"{'LEFT':>5}  WHAT IT WOULD TAKE"]
    for sh in v.services:
        d, n = sh.demand, sh.need
        take = []
        if n.shared_hosts:
            take.append(f"{n.shared_hosts} shared-pool hosts ({n.shared_containers} ctrs)")
        if n.ecs_hosts:
            take.append(f"{n.ecs_hosts} x {n.ecs_instance_type} ({n.ecs_containers} ctrs, "
                        f"{n.cost_per_month:,.0f}/month)")
        if n.nowhere:
            take.append(f"{n.nowhere} ctrs nowhere: {n.note}")
        lines.append(f"{d.service:<12} {sh.pool:<9} {d.running:>5} {d.lost:>5} {d.needed:>5} {d.to_place:>6} "
                     f"{sh.placed:>6} {sh.unplaced:>5}  {'; '.join(take) or '-'}")
    for p in v.pools:
        lines.append(f"pool {p.pool}: {p.hosts_now - p.hosts_lost}/{p.hosts_now} hosts left, allocation "
                     f"{100 * p.util_now:.0f}% now -> {100 * p.util_after:.0f}% after")
    if not v.absorbed:
        lines.append(f"it would take {v.shared_hosts} shared-pool hosts and {v.ecs_hosts} ECS hosts "
                     f"({v.cost_per_month:,.0f} a month)" + (f"; {v.nowhere} containers have nowhere to go"
                                                            if v.nowhere else ""))
    return "\n".join(lines)
