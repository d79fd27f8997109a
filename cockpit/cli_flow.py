"""`cockpit flow list|show|start|pause|resume|stop`: expansion flows for scripts and terminals.

Starting and stopping ask first (or take --yes), obey read-only mode and roles, and are audited,
as in `:tasks`; the engine active on the store carries the flows out (a flow started with no
engine running waits in the queue until one starts, and the command says so)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime

from cockpit import cli_args as arg
from cockpit.cli_hosts import EXIT_BAD_INPUT
from cockpit.config import Config
from cockpit.engine.actions import ACTIONS

flow_count = arg.whole(1, 10_000, "a count of containers")
batch = arg.whole(1, 1_000, "a number of hosts")
retries = arg.whole(1, 20, "a number of attempts")


def add_parser(sub) -> argparse.ArgumentParser:
    """The `flow` subcommand on `sub` (the top-level subparsers)."""
    from cockpit.cli import _common  # here, not at the top: cli imports this module

    fl = sub.add_parser("flow", help="expansion flows: list, show, start (scale out or in), pause, resume, stop")
    _common(fl, suppress=True)
    verbs = fl.add_subparsers(dest="flow_command", metavar="ACTION", required=True, parser_class=arg.SubParser)
    ls = verbs.add_parser("list", help="the flows, newest first, with the step each is at")
    _common(ls, suppress=True)
    ls.add_argument("--json", action="store_true", help="one JSON document")
    sh = verbs.add_parser("show", help="one flow: its steps, and its hosts and containers with their logs' last line")
    _common(sh, suppress=True)
    sh.add_argument("flow", type=arg.ident, metavar="ID")
    sh.add_argument("--json", action="store_true", help="one JSON document (the items' whole logs too)")
    st = verbs.add_parser("start", help="start a flow: COUNT containers more (expand) or fewer (shrink) of SERVICE")
    _common(st, suppress=True)
    st.add_argument("kind", choices=("expand", "shrink"), metavar="expand|shrink")
    st.add_argument("service", type=arg.name, metavar="SERVICE")
    st.add_argument("count", type=flow_count, metavar="COUNT")
    st.add_argument("--idc", type=arg.name, metavar="IDC", help="in this IDC (default: where the service runs most)")
    st.add_argument("--batch", type=batch, default=5, metavar="N",
                    help="hosts deployed at a time, 1 to 1000 (default 5)")
    st.add_argument("--retries", type=retries, default=3, metavar="N",
                    help="attempts per host or container and step, 1 to 20 (default 3)")
    st.add_argument("--yes", action="store_true", help="do not ask")
    for verb, text in (("pause", "pause a flow (the step under way finishes; nothing more starts)"),
                       ("resume", "resume a paused flow where it stopped"),
                       ("stop", "stop a flow for good: what is done stays, the steps not reached do not run")):
        x = verbs.add_parser(verb, help=text)
        _common(x, suppress=True)
        x.add_argument("flow", type=arg.ident, metavar="ID")
        x.add_argument("--yes", action="store_true", help="do not ask")
    return fl


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.session import open_session

    with open_session(cfg) as s:
        return _run(args, s)


def _run(args: argparse.Namespace, s) -> int:
    c, verb, tz = s.cockpit, args.flow_command, s.world.traffic.tz
    if verb == "list":
        return _list(c, args.json, tz)
    if verb == "show":
        return _show(c, args.flow, args.json, tz)
    if verb == "start":
        return _start(c, args)
    f = c.flow(args.flow)
    if f is None:
        print(f"cockpit: no flow {args.flow} (cockpit flow list shows them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not c.refusal(f"flow.{verb}") and not _ask(args, f"flow.{verb}", f"{verb} flow {f.id}: {_what(f)}, {_where(f)}"):
        return EXIT_BAD_INPUT
    call = {"pause": c.pause_flow, "resume": c.resume_flow, "stop": c.stop_flow}[verb]
    return _said(call(f.id))


def _start(c, args: argparse.Namespace) -> int:
    ask = c.flow_ask(args.kind, args.service, args.count, args.idc, batch=args.batch, retries=args.retries)
    if ask.problem is not None:
        print(f"cockpit: {arg.one_line(ask.problem)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not c.refusal("flow.start") and not _ask(args, "flow.start", ask.text):
        return EXIT_BAD_INPUT
    # a refusal (read-only, role) goes through the facade too: it is audited there
    out = c.start_flow(ask.kind, ask.service, ask.count, ask.idc, batch=args.batch, retries=args.retries)
    code = _said(out)
    if out.ok and out.task is not None:
        engine = c.engine_view()
        if engine.mode == "none":
            print("note: no engine is running on this store: the flow waits in the queue until one starts "
                  f"(cockpit, or cockpit engine); cockpit flow show {out.task} follows it")
        else:
            where = f"the engine on {engine.holder}" if engine.holder else "the engine"
            print(f"{where} carries it out; cockpit flow show {out.task} follows it")
    return code


def _ask(args: argparse.Namespace, action_id: str, what: str) -> bool:
    """What will happen, then the question (a terminal) or the way to say yes (a script)."""
    action = ACTIONS[action_id]
    if args.yes or not action.confirm:
        return True
    print(what)
    if not sys.stdin.isatty():
        print(f"cockpit: {action.title}: it changes the platform: confirm with --yes", file=sys.stderr)
        return False
    try:
        return input(f"{action.title}? [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _said(out) -> int:
    if not out.ok:
        print(f"cockpit: {arg.one_line(out.message)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(out.message)
    return 0


# --- reading -----------------------------------------------------------------------------------------


def _what(f) -> str:
    return f"{f.service} {'+' if f.kind == 'expand' else '-'}{f.count} in {f.idc or '?'}"


def _at(f) -> str:
    """`5/9 container scheduling`, `9/9 done`, `0/9 not started`."""
    n = len(f.steps)
    if f.state == "done":
        return f"{n}/{n} done"
    names = [x.name for x in f.steps]
    failed = next((i for i, x in enumerate(f.steps) if x.state == "failed"), None)
    k = names.index(f.step) if f.step in names else failed
    return f"0/{n} not started" if k is None else f"{k + 1}/{n} {f.steps[k].title}"


def _where(f) -> str:
    return f"done, {len(f.steps)}/{len(f.steps)} steps" if f.state == "done" else f"{f.state} at {_at(f)}"


def _when(t: float | None, tz, fmt: str = "%d %b %H:%M:%S") -> str:
    return "-" if t is None else datetime.fromtimestamp(t, tz).strftime(fmt)


def _flow_json(f, times: tuple[float, float] | None, tz) -> dict:
    d = asdict(f)
    d["created"] = datetime.fromtimestamp(times[0], tz).isoformat() if times else None
    d["changed"] = datetime.fromtimestamp(times[1], tz).isoformat() if times else None
    return d


def _settled(f) -> str:
    total = sum(f.items.values())
    done = sum(f.items.get(k, 0) for k in ("done", "failed", "skipped"))
    return f"{done}/{total}" if total else "-"


def _list(c, as_json: bool, tz) -> int:
    flows = c.flows()
    times = c.flow_times([f.id for f in flows])
    if as_json:
        json.dump([_flow_json(f, times.get(f.id), tz) for f in flows], sys.stdout, indent=1)
        print()
        return 0
    print(f"{'#':>4} {'KIND':<6} {'SERVICE':<12} {'CHANGE':>6} {'IDC':<10} {'STATE':<9} {'STEP':<26} {'ITEMS':>9} "
          f"{'ACTOR':<10} CREATED")
    for f in flows:
        sign = "+" if f.kind == "expand" else "-"
        print(f"{f.id:>4} {f.kind:<6} {f.service:<12} {f'{sign}{f.count}':>6} {f.idc or '-':<10} {f.state:<9} "
              f"{_at(f):<26} {_settled(f):>9} {f.actor:<10} {_when(times.get(f.id, (None,))[0], tz)}")
    if not flows:
        print("# no flows yet: cockpit flow start expand|shrink SERVICE COUNT starts one")
    return 0


def _show(c, flow_id: int, as_json: bool, tz) -> int:
    f = c.flow(flow_id)
    if f is None:
        print(f"cockpit: no flow {flow_id} (cockpit flow list shows them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    items = c.flow_items(flow_id)
    times = c.flow_times([flow_id]).get(flow_id)
    if as_json:
        json.dump({"flow": _flow_json(f, times, tz),
                   "items": [{**asdict(i), "log": [{"real_t": t, "step": st, "text": x} for t, st, x in i.log]}
                             for i in items]}, sys.stdout, indent=1)
        print()
        return 0
    print(f"flow {f.id}: {f.kind} {_what(f)}, {_where(f)} (by {f.actor}, created "
          f"{_when(times[0] if times else None, tz, '%a %d %b %H:%M:%S')})")
    if f.parent:
        print(f"queued by flow {f.parent}'s dependencies step")
    if f.reason:
        print(f"why: {f.reason}")
    print(f"{'STEP':<22} {'STATE':<8} {'TOOK':>8}  NOTE")
    for x in f.steps:
        took = f"{x.seconds:.2f} s" if x.seconds is not None else ""
        state = {"paused": "paused", "cancelled": "stopped"}.get(f.state, x.state) if x.state == "running" else x.state
        print(f"{x.title:<22} {state:<8} {took:>8}  {x.note}")
    if not items:
        print("# no hosts or containers yet")
        return 0
    width = max(len(i.name) for i in items)
    print(f"{'ITEM':<{width}} {'KIND':<9} {'HOST':<18} {'STEP':<12} {'STATE':<8} {'TRY':>3}  LAST")
    for i in items:
        last = i.detail or (i.log[-1][2] if i.log else "")
        print(f"{i.name:<{width}} {i.kind:<9} {i.host or '-':<18} {i.step:<12} {i.state:<8} {i.attempts:>3}  {last}")
    by = ", ".join(f"{n} {s}" for s, n in sorted(f.items.items()))
    print(f"# {len(items)} hosts and containers: {by}")
    return 0
