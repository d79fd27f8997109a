"""`cockpit audit verify|list`: the audit log's hash chain checked, and its entries for scripts.

`verify` walks the chain and names the first broken entry: exit 0 when whole, 1 when broken,
2 for bad input (no such store, a damaged or older one). `list` prints the newest entries that
match, oldest first; times are the wall clock (as other logs have them), in this machine's zone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from cockpit import cli_args as arg
from cockpit.config import Config

EXIT_BROKEN = 1
LIST_MAX = 1_000_000
_AGO = re.compile(r"([0-9]{1,9})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}(\.\*)?")
_OUTCOME = re.compile(r"[a-z][a-z_-]{0,31}")
limit = arg.whole(1, LIST_MAX, "a number of entries")


def since(text: str) -> tuple[str, float]:
    """`--since`: a time (ISO 8601, this machine's zone unless given) or a span back from now
    (`90s`, `30m`, `12h`, `7d`). ("at", epoch) or ("ago", seconds)."""
    s = text.strip()
    m = _AGO.fullmatch(s)
    if m:
        seconds = int(m[1]) * _UNIT[m[2]]
        if seconds > 100 * 365 * 86400:
            raise argparse.ArgumentTypeError(f"expected at most 100 years back, got {arg.shown(text)}")
        return "ago", float(seconds)
    try:
        if not s.isascii() or len(s) > 40:
            raise ValueError(s)
        when = datetime.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time (2026-11-26T11:00, zone optional) or a span back (30m, 12h, 7d), got {arg.shown(text)}"
        ) from None
    return "at", (when if when.tzinfo else when.astimezone()).timestamp()


def action(text: str) -> str:
    if not _ACTION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected an action id (plan.apply) or a prefix (flow.*), got {arg.shown(text)}")
    return text


def outcome(text: str) -> str:
    if not _OUTCOME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected an outcome (done, refused, failed, queued, ...), got {arg.shown(text)}")
    return text


def add_parser(sub) -> argparse.ArgumentParser:
    """The `audit` subcommand on `sub` (the top-level subparsers)."""
    from cockpit.cli import _common  # here, not at the top: cli imports this module

    au = sub.add_parser("audit", help="the audit log: verify its hash chain, list its entries")
    _common(au, suppress=True)
    verbs = au.add_subparsers(dest="audit_command", metavar="ACTION", required=True, parser_class=arg.SubParser)
    vf = verbs.add_parser("verify", help="walk the hash chain: whole (exit 0), or the first broken entry (exit 1)")
    _common(vf, suppress=True)
    vf.add_argument("--json", action="store_true", help="one JSON object")
    ls = verbs.add_parser("list", help="the newest entries that match, oldest first")
    _common(ls, suppress=True)
    ls.add_argument("--user", type=arg.user, metavar="U", help="only this user's entries")
    ls.add_argument("--action", type=action, metavar="A", help="only this action (plan.apply), or a prefix (flow.*)")
    ls.add_argument("--outcome", type=outcome, metavar="O", help="only this outcome (done, refused, failed, ...)")
    ls.add_argument("--since", type=since, metavar="WHEN",
                    help="from this time (2026-11-26T11:00, this machine's zone unless given) or span back (30m, 7d)")
    ls.add_argument("--limit", type=limit, default=1000, metavar="N",
                    help=f"at most N entries, the newest (1 to {LIST_MAX:,}; default 1,000)")
    ls.add_argument("--json", action="store_true", help="one JSON object")
    return au


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.cli_store import store_url
    from cockpit.store import db as store_db

    url = store_url(cfg)
    if "://" not in url and not Path(url).expanduser().exists():
        raise store_db.StoreError(f"store {url}: no such file")
    db = store_db.open_store(url)
    try:
        if args.audit_command == "verify":
            return _verify(store_db.shown(url), args.json)
        return _list(args)
    finally:
        db.close()


def _verify(where: str, as_json: bool) -> int:
    from cockpit.engine import journal

    w = journal.verify()
    if as_json:
        b = w.broken
        json.dump({"store": where, "whole": w.whole, "entries": w.entries,
                   "head": {"id": w.head_id, "hash": w.head_hash},
                   "broken": None if b is None else {"id": b.id, "why": b.why, "after_id": b.after_id,
                                                     "message": b.describe()}}, sys.stdout)
        sys.stdout.write("\n")
    elif w.whole:
        head = f"; head: entry {w.head_id}, sha256 {w.head_hash}" if w.head_id is not None else ""
        print(f"audit log of store {where}: whole ({w.entries:,} entries{head})")
    else:
        print(f"audit log of store {where}: broken at {w.broken.describe()}; "
              f"the {w.entries:,} entries before it hold")
    return 0 if w.whole else EXIT_BROKEN


def _list(args: argparse.Namespace) -> int:
    from cockpit.engine import journal

    since_real = None
    if args.since is not None:
        kind, value = args.since
        since_real = time.time() - value if kind == "ago" else value
    found = journal.find(user=args.user, action=args.action, outcome=args.outcome, since_real=since_real,
                         limit=args.limit)
    found.reverse()  # oldest first, as a log reads
    if args.json:
        json.dump({"entries": [_entry_json(e) for e in found]}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{'ID':>6} {'REAL':<19} {'USER':<10} {'ROLE':<8} {'HOST':<12} {'ACTION':<18} {'OUTCOME':<8} TARGET  DETAILS")
    for e in found:
        details = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                           for k, v in sorted(e.details.items()))
        print(arg.one_line(f"{e.id:>6} {_real(e.real_t):<19} {e.user:<10} {e.role:<8} {e.host or '-':<12} "
                           f"{e.action:<18} {e.outcome:<8} {e.target}  {details}").rstrip())
    return 0


def _real(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _entry_json(e) -> dict:
    return {"id": e.id, "real_t": e.real_t, "real": datetime.fromtimestamp(e.real_t).astimezone().isoformat(),
            "platform_t": e.platform_t, "user": e.user, "role": e.role, "host": e.host, "action": e.action,
            "target": e.target, "details": e.details, "outcome": e.outcome, "db_user": e.db_user,
            "prev_hash": e.prev_hash, "hash": e.hash}
