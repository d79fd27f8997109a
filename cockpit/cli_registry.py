"""`cockpit registry status|replicate|executions|stop`: replication for scripts and terminals.

Starting and stopping ask first (or take --yes), obey read-only mode and roles, and are audited,
as in the TUI; the engine active on the store carries them out."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime

from cockpit.cli_hosts import EXIT_BAD_INPUT, _confirm, _done
from cockpit.config import Config

CELL = {"source": "src", "in_sync": "ok", "behind": "behind", "missing": "-", "failed": "FAILED", "conflict": "CONFLICT"}


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.session import open_session

    with open_session(cfg) as s:
        return _run(args, s)


def _run(args: argparse.Namespace, s) -> int:
    c = s.cockpit
    verb = args.registry_command
    if verb == "status":
        return _status(c, args.json)
    if verb == "executions":
        return _executions(c, args.json, s.world.traffic.tz)
    if verb == "replicate":
        why = c.replication_refusal(args.policy, args.image or None)  # before asking: nothing to confirm
        if why is not None:
            print(f"cockpit: {why}", file=sys.stderr)
            return EXIT_BAD_INPUT
        what = f"replicate {args.policy}" + (f" ({', '.join(args.image)})" if args.image else " (every image it covers)")
        if not _confirm(args, "registry.replicate", what):
            return EXIT_BAD_INPUT
        return _done(c.replicate(args.policy, args.image or None), s)
    if not _confirm(args, "registry.stop", f"stop replication {args.execution}"):
        return EXIT_BAD_INPUT
    return _done(c.stop_replication(args.execution), s)


def _status(c, as_json: bool) -> int:
    tree, policies, m = c.registry_tree(), c.replication_policies(), c.registry_matrix()
    if as_json:
        json.dump({"registries": [asdict(n) for n in tree], "policies": [asdict(p) for p in policies],
                   "matrix": {img: {r: asdict(cell) for r, cell in row.items()} for img, row in m.rows}},
                  sys.stdout, indent=1)
        print()
        return 0
    for n in tree:
        health = "?" if n.ok is None else ("up" if n.ok else f"DOWN ({n.error})")
        link = f" ↔ {n.peer} (dual master)" if n.peer else ""
        print(f"{'  ' * n.depth}{n.name:<{24 - 2 * n.depth}} {n.idc:<10} {n.role:<6} {n.images:>4} images  {health}{link}")
    for p in policies:
        print(f"policy {p.name}: {p.source} -> {', '.join(p.destinations)} ({p.trigger}"
              + (f" {p.schedule}" if p.schedule else "") + f"; repositories {p.repositories}; tags {p.tags})")
    width = max([len(img) for img, _ in m.rows] + [5])
    print(f"{'IMAGE':<{width}} " + " ".join(f"{r[:12]:>12}" for r in m.registries))
    for img, row in m.rows:
        cells = []
        for r in m.registries:
            cell = row[r]
            text = CELL[cell.state]
            if cell.state == "behind" and cell.lag_s is not None:
                text = f"behind {cell.lag_s / 60:.0f}m"
            cells.append(f"{text:>12}")
        print(f"{img:<{width}} " + " ".join(cells))
    return 0


def _executions(c, as_json: bool, tz) -> int:
    rows = c.replications()
    if as_json:
        json.dump([asdict(r) for r in rows], sys.stdout, indent=1)
        print()
        return 0
    print(f"{'#':>4} {'POLICY':<16} {'TRIGGER':<7} {'STATE':<9} {'TASKS':>9} {'FAIL':>4} {'CONFL':>5} {'MB':>9} {'MB/s':>6} WHEN")
    for r in rows:
        when = datetime.fromtimestamp(r.created_t, tz).strftime("%d %H:%M:%S")
        print(f"{r.id:>4} {r.policy:<16} {r.trigger:<7} {r.state:<9} {f'{r.settled}/{r.tasks_total}':>9} "
              f"{r.tasks_failed:>4} {r.tasks_conflict:>5} {r.bytes_moved / 1e6:>9,.1f} {r.throughput_bps / 1e6:>6.1f} {when}")
    return 0
