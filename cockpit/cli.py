"""`cockpit` and its subcommands. Bad input of any kind: a clear message on stderr, exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import datetime

import peewee as pw

from cockpit import cli_args as arg
from cockpit import config as config_mod
from cockpit.backends.factory import BackendError
from cockpit.config import ROLES, Config, ConfigError
from cockpit.identity import IdentityError
from cockpit.store.db import StoreError
from cockpit.world import WorldError
from cockpit.yamlcheck import ProblemsError

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A problem with what the user asked for; printed as is, exit 2."""


def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    p.add_argument("--world", type=arg.path, metavar="FILE", default=d, help="world file (default: the demo world)")
    p.add_argument("--db", type=arg.path, metavar="URL", default=d,
                   help="store path or peewee URL (default: per world, in the data dir)")
    p.add_argument("--config", type=arg.path, metavar="FILE", default=d,
                   help="config file (default: ~/.config/cockpit/config.yaml)")


def _run_opts(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    p.add_argument("--speed", type=arg.speed, default=d, metavar="N", help="platform clock speed (x real time)")
    p.add_argument("--reset", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="start the platform again from the world file")


def _with_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object")


def parser() -> argparse.ArgumentParser:
    p = arg.Parser(prog="cockpit", description="Terminal operations cockpit for a DCP-style container platform.")
    _common(p, suppress=False)
    _run_opts(p, suppress=False)
    p.add_argument("--readonly", action="store_true", default=None, help="disable every action")
    p.add_argument("--role", choices=ROLES, default=None,
                   help="a lower role for this run than the role mapping gives you (never a higher one)")
    p.add_argument("--user", type=arg.no_user, help=argparse.SUPPRESS)  # gone: said so, rather than "invalid choice"
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=arg.SubParser)

    c = sub.add_parser("check", help="validate a world file: a summary, or one line per problem (exit 2)")
    c.add_argument("world_file", type=arg.path, metavar="WORLD")

    _listing(sub, "hosts", "list every host with its capacity, allocation and state")

    _plan_parser(sub)
    _ecs_parser(sub)

    _listing(sub, "pools", "pools per IDC: hosts alive and in all, containers, hosts initialising")
    _move_parsers(sub)
    _listing(sub, "backends", "how each backend (store, cloud, engines, discovery, registries) last answered")
    _listing(sub, "costs", "cost per IDC, cluster and pool; prepaid hosts expiring")

    from cockpit import cli_headroom, cli_lab, cli_simulate

    cli_headroom.add_parser(sub)
    cli_simulate.add_parser(sub)
    _serve_parser(sub)
    cli_lab.add_parser(sub)

    e = sub.add_parser("engine", help="run the engine headless (one is active per store; others stand by)")
    _common(e, suppress=True)
    _run_opts(e, suppress=True)

    _registry_parser(sub)

    from cockpit import cli_flow

    cli_flow.add_parser(sub)

    from cockpit import cli_audit

    cli_audit.add_parser(sub)

    from cockpit import cli_web

    cli_web.add_parser(sub)

    _store_parser(sub)
    return p


def _listing(sub, name: str, text: str) -> None:
    """A command that lists something, as a table or (--json) one JSON object."""
    p = sub.add_parser(name, help=text)
    _common(p, suppress=True)
    _with_json(p)


def _move_parsers(sub) -> None:
    """The actions that take containers away from where they run: a pool move and a scale-in."""
    mv = sub.add_parser("move", help="move hosts between pools (their containers are re-placed first)")
    _common(mv, suppress=True)
    mv.add_argument("--to", required=True, type=arg.name, metavar="POOL", dest="to_pool")
    mv.add_argument("--from", type=arg.name, metavar="POOL", dest="from_pool")
    mv.add_argument("--idc", type=arg.name, metavar="IDC")
    mv.add_argument("--count", type=arg.count, metavar="N")
    mv.add_argument("--host", action="append", type=arg.name, default=[], metavar="NAME",
                    help="a host to move (repeatable)")
    mv.add_argument("--yes", action="store_true", help="do not ask")

    si = sub.add_parser("scale-in", help="stop N containers of a service, where it is most crowded first")
    _common(si, suppress=True)
    si.add_argument("--service", required=True, type=arg.name, metavar="NAME")
    si.add_argument("--count", required=True, type=arg.scale_in_count, metavar="N")
    si.add_argument("--idc", type=arg.name, metavar="IDC", help="in this IDC only")
    si.add_argument("--yes", action="store_true", help="do not ask")


def _store_parser(sub) -> None:
    st = sub.add_parser("store", help="the store: check that it is whole, or upgrade its schema")
    _common(st, suppress=True)
    st_sub = st.add_subparsers(dest="store_command", metavar="ACTION", required=True, parser_class=arg.SubParser)
    for verb, text in (("check", "check every page and index, and the schema: 'whole', or one line per problem"),
                       ("upgrade", "upgrade the store to this Cockpit's schema, keeping a copy of a SQLite file")):
        _common(st_sub.add_parser(verb, help=text), suppress=True)
    sec = st_sub.add_parser("secure", help="PostgreSQL: enforce roles in the database (run once, as the store's owner)")
    _common(sec, suppress=True)
    sec.add_argument("--engine", action="append", default=[], type=arg.db_role, metavar="ROLE",
                     help="a database role that runs engines (created if missing); repeat for several")
    sec.add_argument("--sre", action="append", default=[], type=arg.db_role, metavar="ROLE",
                     help="an SRE's database role, named as their OS user (created if missing); repeat for several")


def _plan_parser(sub) -> None:
    pl = sub.add_parser("plan", help="what if: place N containers (and their dependencies) and measure the plan")
    _common(pl, suppress=True)
    what = pl.add_mutually_exclusive_group(required=True)
    what.add_argument("--service", type=arg.name, metavar="NAME")
    what.add_argument("--template", type=arg.template, metavar="SID|NAME", help="an expansion template, by sid or name")
    pl.add_argument("--count", required=True, type=arg.count, metavar="N")
    pl.add_argument("--idc", type=arg.name, metavar="IDC", help="place in this IDC only")
    pl.add_argument("--strategy", choices=("spread", "binpack", "random", "custom"), default="spread")
    pl.add_argument("--filter", action="append", type=arg.constraint, default=[], metavar="CONSTRAINT",
                    help="an extra constraint, e.g. 'gen == new', 'disk >= 2T' or 'label.disk == ssd' (repeatable)")
    pl.add_argument("--weights", type=arg.weights, default=None, metavar="W",
                    help="custom scorer weights, e.g. 'spread=0.6,random=0.4'")
    pl.add_argument("--seed", type=arg.seed, default=0, metavar="S")
    pl.add_argument("--compare", action="store_true", help="every strategy side by side")
    out = pl.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object")
    out.add_argument("--yaml", action="store_true", help="the same as YAML")


def _ecs_parser(sub) -> None:
    ec = sub.add_parser("ecs", help="ECS orders: list, order hosts, pause, resume, cancel, retry")
    _common(ec, suppress=True)
    ec_sub = ec.add_subparsers(dest="ecs_command", metavar="ACTION", required=True, parser_class=arg.SubParser)
    ls = ec_sub.add_parser("list", help="the orders, newest first")
    _common(ls, suppress=True)
    _with_json(ls)
    od = ec_sub.add_parser("order", help="order N hosts from a template's ECS settings")
    _common(od, suppress=True)
    od.add_argument("--template", type=arg.ident, required=True, metavar="SID")
    od.add_argument("--count", type=arg.order_count, required=True, metavar="N")
    od.add_argument("--pool", type=arg.name, metavar="POOL", help="where the hosts go (default: the template's pool)")
    od.add_argument("--yes", action="store_true", help="do not ask")
    for verb in ("pause", "resume", "cancel", "retry"):
        x = ec_sub.add_parser(verb, help=f"{verb} an order")
        _common(x, suppress=True)
        x.add_argument("order", type=arg.ident, metavar="ORDER")
        x.add_argument("--yes", action="store_true", help="do not ask")


def _registry_parser(sub) -> None:
    rg = sub.add_parser("registry", help="registry replication: status, replicate, executions, stop")
    _common(rg, suppress=True)
    rg_sub = rg.add_subparsers(dest="registry_command", metavar="ACTION", required=True, parser_class=arg.SubParser)
    for verb, text in (("status", "the topology with each registry's health, the policies, images x registries"),
                       ("executions", "the replications, newest first")):
        x = rg_sub.add_parser(verb, help=text)
        _common(x, suppress=True)
        _with_json(x)
    rp = rg_sub.add_parser("replicate", help="start a policy's replication now")
    _common(rp, suppress=True)
    rp.add_argument("policy", type=arg.name, metavar="POLICY")
    rp.add_argument("--image", action="append", type=arg.image, default=[], metavar="NAME:TAG",
                    help="only this image (repeatable; default every image the policy covers)")
    rp.add_argument("--yes", action="store_true", help="do not ask")
    sp = rg_sub.add_parser("stop", help="stop a replication (the copies under way end first)")
    _common(sp, suppress=True)
    sp.add_argument("execution", type=arg.ident, metavar="EXECUTION")
    sp.add_argument("--yes", action="store_true", help="do not ask")


def _serve_parser(sub) -> None:
    sv = sub.add_parser("serve", help="serve the simulated platform's HTTP faces (the cloud's ECS API)")
    sv.add_argument("face", choices=["cloud"], help="cloud: ECS's RPC protocol, for the aliyun backend and the SDK")
    sv.add_argument("--world", type=arg.path, metavar="FILE", default=argparse.SUPPRESS,
                    help="world whose cloud IDC to serve")
    sv.add_argument("--host", type=arg.address, default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=arg.port, default=0, help="port, 0 to 65535 (default 0: any free one, printed)")
    sv.add_argument("--latency-ms", type=arg.latency_ms, default=0.0, help="time each RunInstances takes, 0 to 60000")
    sv.add_argument("--max-in-flight", type=arg.in_flight, default=20,
                    help="calls in flight per account before Throttling.User, 1 to 100")
    sv.add_argument("--rate", type=arg.rate, default=None, help="calls per second per account before Throttling")
    sv.add_argument("--stock", type=arg.stock, action="append", default=[], metavar="ZONE:TYPE=N",
                    help=f"override a zone's stock, N from 0 to {arg.STOCK_MAX}")
    sv.add_argument("--fault", type=arg.fault, action="append", default=[], metavar="ACTION:CODE[:STATUS[:TIMES]]",
                    help=f"answer with this error (for tests): STATUS 400 to 599, TIMES 1 to {arg.FAULT_TIMES_MAX}")


def conflicts(args: argparse.Namespace) -> str | None:
    """What argparse cannot see: options that make no sense together. A line for the error."""
    if args.command == "plan" and args.weights and not (args.strategy == "custom" or args.compare):
        return "argument --weights: only with --strategy custom or --compare"
    if args.command == "web":
        from cockpit.cli_web import conflict

        return conflict(args)
    if args.command == "move":
        if args.host and (args.from_pool or args.idc or args.count):
            return "argument --host: not allowed with --from, --idc or --count"
        if not args.host and not (args.from_pool and args.count):
            return "move needs --host NAME..., or --from POOL and --count N"
    return None


def settings(args: argparse.Namespace) -> Config:
    cfg = config_mod.load(getattr(args, "config", None))
    if getattr(args, "command", None) == "engine" and os.environ.get("COCKPIT_ENGINE_DB"):
        cfg.db = os.environ["COCKPIT_ENGINE_DB"]  # a TUI's own engine (engine_child.py): not on the command line
    for key in ("world", "db", "speed"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    if getattr(args, "role", None) is not None:
        cfg.asked_role, cfg.asked_by = args.role, "--role"
    if getattr(args, "readonly", None):
        cfg.readonly = True
    cfg.identity  # noqa: B018 - settled now: an unsafe role mapping or a role asked above it is one line, exit 2
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help (0), or an argument error already said on one line (2)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    clash = conflicts(args)
    if clash:
        print(f"cockpit {args.command}: error: {arg.one_line(clash)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "serve":
            from cockpit.cli_run import cmd_serve

            return cmd_serve(args)
        if args.command == "lab":
            from cockpit.cli_lab import run as run_lab

            return run_lab(args)
        cfg = settings(args)
        if args.command == "hosts":
            return cmd_hosts(args, cfg)
        if args.command == "engine":
            from cockpit.cli_run import cmd_engine

            return cmd_engine(args, cfg)
        if args.command == "plan":
            return cmd_plan(args, cfg)
        if args.command in ("ecs", "pools", "move", "costs", "scale-in", "backends"):
            from cockpit.cli_hosts import run

            return run(args, cfg)
        if args.command == "simulate":
            from cockpit.cli_simulate import run as run_simulate

            return run_simulate(args, cfg)
        if args.command == "headroom":
            from cockpit.cli_headroom import run as run_headroom

            return run_headroom(args, cfg)
        if args.command == "registry":
            from cockpit.cli_registry import run as run_registry

            return run_registry(args, cfg)
        if args.command == "flow":
            from cockpit.cli_flow import run as run_flow

            return run_flow(args, cfg)
        if args.command == "audit":
            from cockpit.cli_audit import run as run_audit

            return run_audit(args, cfg)
        if args.command == "store":
            from cockpit.cli_store import run as run_store

            return run_store(args, cfg)
        if args.command == "web":
            from cockpit.cli_web import run as run_web

            return run_web(args, cfg)
        from cockpit.cli_run import cmd_tui

        return cmd_tui(args, cfg)
    except (WorldError, ConfigError, ProblemsError) as e:  # one line per problem (a trace file's too); `check` prints them as FILE:LINE: ...
        prefix = "" if args.command == "check" else "cockpit: "
        print("\n".join(prefix + line for line in str(e).splitlines()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreError, CliError, BackendError) as e:
        print(f"cockpit: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except IdentityError as e:  # who you are or what you may do: an unsafe role mapping, a role asked too high
        print(f"cockpit: {arg.one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (pw.PeeweeException, sqlite3.Error) as e:  # the store failed us half-way: one line, not a traceback
        from cockpit.store.db import describe

        print(f"cockpit: store: {arg.one_line(describe(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `cockpit hosts | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def cmd_check(args: argparse.Namespace) -> int:
    from cockpit import world as world_mod
    from cockpit.core.addressing import PORT_BASE, PORT_LAST, ports_short
    from cockpit.core.bootstrap import hosts_from_world, place_initial

    w = world_mod.load(args.world_file)
    hosts = hosts_from_world(w)
    table, initial = place_initial(w, hosts)
    crowded = ports_short(table.counts, [w.service(n) for n in table.services])
    if crowded is not None:
        h, need = crowded
        print(f"{w.source}: host {hosts[h].name}: its first containers would publish {need:,} ports; "
              f"a host has {PORT_LAST - PORT_BASE + 1:,}", file=sys.stderr)
        return EXIT_BAD_INPUT
    short = [i for i in initial if i.plan.unplaced]
    if short:
        for i in short:
            idx = [s.name for s in w.services].index(i.service)
            path: tuple = ("services", idx, "containers", i.idc)
            while path and path not in w.lines:  # inside an alias: the line of what it stands for
                path = path[:-1]
            line = w.lines.get(path, 0)
            print(f"{w.source}:{line}: services[{idx}].containers.{i.idc}: {i.plan.why_unplaced()}")
        return EXIT_BAD_INPUT
    print(world_mod.summary(w))
    return 0


def cmd_hosts(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.session import open_session

    s = open_session(cfg, engine=False, reset=False)
    try:
        hosts = s.cockpit.hosts()
        clock = s.cockpit.clock()
    finally:
        s.close()
    when = datetime.fromtimestamp(clock.t, s.world.traffic.tz).isoformat()
    if args.json:
        json.dump({"world": s.world.name, "platform_time": when, "hosts": [h.as_json() for h in hosts]}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{'HOST':<18} {'IDC':<9} {'POOL':<9} {'HW':<8} {'CORES':>5} {'MEM':>5} {'DISK':>6} "
          f"{'CPU.A':>6} {'MEM.A':>6} {'CTRS':>4} {'STATE':<5} LABELS")
    for h in hosts:
        labels = ",".join(f"{k}={v}" for k, v in sorted(h.labels.items()))
        print(f"{h.name:<18} {h.idc:<9} {h.pool:<9} {h.hardware:<8} {h.cores:>5} {h.memory_gb:>5} {h.disk_gb:>6} "
              f"{h.cpu_alloc:>6g} {h.mem_alloc:>6g} {h.containers:>4} {'up' if h.alive else 'down':<5} {labels}")
    print(f"# {len(hosts)} hosts, {sum(not h.alive for h in hosts)} down, world {s.world.name} at {when}")
    return 0


def cmd_plan(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.core.whatif import WhatIfError, document
    from cockpit.session import open_session

    s = open_session(cfg)
    try:
        try:
            req = s.cockpit.whatif(
                target=args.service or args.template, count=args.count, idc=args.idc, strategy=args.strategy,
                filters=", ".join(args.filter), weights=args.weights or "", seed=args.seed,
            )
            previews = s.cockpit.compare(req) if args.compare else {req.strategy: s.cockpit.preview(req)}
        except WhatIfError as e:
            raise CliError(str(e)) from None
    finally:
        s.close()
    if args.json or args.yaml:
        doc = {name: document(p) for name, p in previews.items()}
        data = {"strategies": doc} if args.compare else doc[req.strategy]
        if args.json:
            json.dump(data, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            import yaml

            yaml.safe_dump(data, sys.stdout, sort_keys=False)
        return 0
    from cockpit.cli_text import plan_text, compare_text

    print(compare_text(previews) if args.compare else plan_text(previews[req.strategy]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
