"""`cockpit lab up|down|status`: a small real platform on this machine (cockpit/lab/).

Exit codes: 0 done (status: every piece answers); 1 status: some piece does not answer;
2 bad input or the lab could not be made or taken down (one line saying why); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from cockpit import cli_args as arg
from cockpit.lab.layout import MAX_HOSTS

hosts_count = arg.whole(1, MAX_HOSTS, "a number of hosts")
idc_count = arg.whole(1, 2, "a number of IDCs")


def default_dir() -> Path:
    from cockpit.store.db import data_dir

    return data_dir() / "lab"


def add_parser(sub) -> None:
    lab = sub.add_parser("lab", help="a small real platform on this machine (root): hosts in network namespaces "
                                     "with sshd and dockerd, registries, etcd, nginx")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True, parser_class=arg.SubParser)
    where = f"the lab's directory (default {default_dir()})"
    up = lab_sub.add_parser("up", help="bring a lab up and write its world and Cockpit config into its directory")
    up.add_argument("--hosts", type=hosts_count, default=2, metavar="N", help=f"hosts, 1 to {MAX_HOSTS} (default 2)")
    up.add_argument("--idcs", type=idc_count, default=1, metavar="N", help="IDCs, 1 or 2 (default 1)")
    up.add_argument("--dir", type=arg.path, default=None, metavar="D", help=where)
    down = lab_sub.add_parser("down", help="take the lab down: every process, namespace, interface and file it made")
    down.add_argument("--dir", type=arg.path, default=None, metavar="D", help=where)
    st = lab_sub.add_parser("status", help="each piece of the lab and whether it answers (exit 1 when one does not)")
    st.add_argument("--dir", type=arg.path, default=None, metavar="D", help=where)
    st.add_argument("--json", action="store_true", help="one JSON object")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from cockpit.lab.procs import LabError

    d = Path(args.dir).expanduser() if args.dir else default_dir()
    what = f"cockpit lab {args.lab_command}"
    try:
        if args.lab_command == "up":
            return _up(args, d)
        if args.lab_command == "down":
            from cockpit.lab.down import down

            down(d, say=_say)
            return 0
        return _status(args, d)
    except LabError as e:
        print(f"{what}: {arg.one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{what}: interrupted" + ("; what was made is taken down" if args.lab_command == "up" else ""),
              file=sys.stderr)
        return 130


def _say(line: str) -> None:
    print(line, flush=True)


def _up(args: argparse.Namespace, d: Path) -> int:
    from cockpit.lab.up import up

    # A hang-up or a kill while coming up takes down what was made, as Ctrl-C does.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    up(d, args.hosts, args.idcs, say=_say)
    return 0


def _status(args: argparse.Namespace, d: Path) -> int:
    from cockpit.lab import state, status
    from cockpit.lab.procs import LabError

    st = state.load(Path(os.path.realpath(d)))
    if st is None:
        raise LabError(f"no lab in {d} (cockpit lab up --dir {d} makes one)")
    rows = status.status(st)
    if args.json:
        json.dump(status.as_json(st, rows), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(status.table(st, rows))
    return 0 if all(r.answers for r in rows) else 1
