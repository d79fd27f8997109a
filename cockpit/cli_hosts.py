"""`cockpit ecs`, `pools`, `move` and `costs`: the host layer for scripts and terminals.

Changes ask first (or take --yes), obey read-only mode and roles, and are audited, exactly as
in the TUI: both go through the facade. The engine that is active on the store carries them out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime

from cockpit.config import Config
from cockpit.engine.actions import ACTIONS, Outcome

EXIT_BAD_INPUT = 2


def _confirm(args: argparse.Namespace, action_id: str, what: str) -> bool:
    if getattr(args, "yes", False) or not ACTIONS[action_id].confirm:
        return True
    if not sys.stdin.isatty():
        print(f"cockpit: {ACTIONS[action_id].title}: it changes the platform: confirm with --yes", file=sys.stderr)
        return False
    answer = input(f"{what}\n{ACTIONS[action_id].title}? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _done(o: Outcome, s) -> int:
    if not o.ok:
        print(f"cockpit: {o.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(o.message)
    if s.cockpit.engine_view().mode == "none":
        print("note: no engine is running on this store; it is carried out when one starts (cockpit, or cockpit engine)")
    return 0


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.session import open_session

    with open_session(cfg) as s:
        return _run(args, s)


def _run(args: argparse.Namespace, s) -> int:
    c = s.cockpit
    if args.command == "pools":
        pools = c.pools()
        if args.json:
            json.dump([asdict(p) for p in pools], sys.stdout, indent=1)
            print()
            return 0
        print(f"{'POOL':<10} {'CLUSTER':<9} {'KIND':<8} {'IDC':<9} {'HOSTS':>9} {'CTRS':>6} {'INIT':>5}")
        for p in pools:
            print(f"{p.pool:<10} {p.cluster:<9} {p.kind:<8} {p.idc:<9} {f'{p.hosts_alive}/{p.hosts_total}':>9} "
                  f"{p.containers:>6} {p.pending_init:>5}")
        return 0
    if args.command == "backends":
        return _backends(args, c)
    if args.command == "costs":
        v = c.costs()
        if args.json:
            json.dump({"lines": [asdict(line) for line in v.lines],
                       "expiring": [{**asdict(h), "days_left": round(d, 2)} for h, d in v.expiring]}, sys.stdout, indent=1)
            print()
            return 0
        print(f"{'SCOPE':<8} {'NAME':<10} {'HOSTS':>6} {'A DAY':>10} {'A MONTH':>12} {'THIS MONTH':>11}")
        for line in v.lines:
            print(f"{line.scope:<8} {line.name:<10} {line.hosts:>6} {line.per_day:>10,.0f} {line.per_month:>12,.0f} "
                  f"{line.month_to_date:>11,.0f}")
        tz = s.world.traffic.tz
        print(f"# {len(v.expiring)} prepaid hosts expire within {v.warn_days} days")
        for h, days in v.expiring:
            print(f"  {h.name:<18} {h.charge_type:<8} {datetime.fromtimestamp(h.expires, tz):%Y-%m-%d %H:%M} "
                  f"({days:.1f} days)")
        return 0
    if args.command == "scale-in":
        where = f" in {args.idc}" if args.idc else ""
        if not _confirm(args, "service.scale_in", f"stop {args.count} {args.service} containers{where}"):
            return EXIT_BAD_INPUT
        return _done(c.scale_in(args.service, args.count, idc=args.idc), s)
    if args.command == "move":  # the arguments' shape is checked by cli.conflicts, the rest by the facade
        move = dict(to_pool=args.to_pool, from_pool=args.from_pool, idc=args.idc, count=args.count,
                    hosts=args.host or None)
        why = c.move_problem(**move)  # before asking: a move that cannot be queued is refused up front
        if why:
            print(f"cockpit: {why}", file=sys.stderr)
            return EXIT_BAD_INPUT
        what = (f"move {', '.join(args.host)} to {args.to_pool}" if args.host
                else f"move {args.count} hosts of {args.from_pool} ({args.idc or 'any IDC'}) to {args.to_pool}")
        if not _confirm(args, "pool.move", what):
            return EXIT_BAD_INPUT
        return _done(c.move_hosts(**move), s)
    # ecs
    if args.ecs_command == "list":
        orders = c.ecs_orders()
        if args.json:
            json.dump([asdict(o) for o in orders], sys.stdout, indent=1)
            print()
            return 0
        print(f"{'#':>4} {'SERVICE':<9} {'POOL':<9} {'DONE':>10} {'STATE':<10} {'ZONE IN USE':<14} {'FALLBACKS':>9} REASON")
        for o in orders:
            print(f"{o.id:>4} {o.service:<9} {o.pool:<9} {f'{o.created}/{o.count}':>10} {o.state:<10} "
                  f"{o.option.split('/')[0]:<14} {len(o.fallbacks):>9} {o.reason or ''}")
        return 0
    if args.ecs_command == "order":
        tpl = next((t for t in c.ecs_templates() if t[0] == args.template), None)
        what = (f"{args.count} x {tpl[3]} from template {tpl[0]} ({tpl[1]}): {args.count * tpl[4]:,.2f} an hour, "
                f"{args.count * tpl[5]:,.0f} a month" if tpl else f"template {args.template}")
        if tpl and not _confirm(args, "ecs.order", what):
            return EXIT_BAD_INPUT
        return _done(c.order_hosts(args.template, args.count, args.pool), s)
    verb = args.ecs_command
    if not _confirm(args, f"ecs.{verb}", f"{verb} order {args.order}"):
        return EXIT_BAD_INPUT
    call = {"pause": c.pause_order, "resume": c.resume_order, "cancel": c.cancel_order, "retry": c.retry_order}[verb]
    return _done(call(args.order), s)


def _backends(args: argparse.Namespace, c) -> int:
    """How each backend last answered the active engine: one line each, the failing ones first."""
    import time

    now = time.time()
    states = c.backends()
    if args.json:
        json.dump([{**asdict(b), "age_s": b.age(now), "said": b.describe(now)} for b in states], sys.stdout, indent=1)
        print()
        return 0
    if not states:
        print("no engine has reported on its backends yet (is one running on this store?)")
    for b in states:
        print(b.describe(now))
    return 0
