"""`cockpit web`: the same app in a browser, served by textual-serve to whoever holds a token printed
at start (see cockpit/web.py). Each browser session runs `python -m cockpit` with this command's
options, as a child of this process: as the user who started it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from cockpit import cli_args as arg
from cockpit.config import ROLES, Config

DEFAULT_PORT = 8000
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_parser(sub) -> argparse.ArgumentParser:
    """The `web` subcommand on `sub` (the top-level subparsers)."""
    from cockpit.cli import _common  # here, not at the top: cli imports this module

    w = sub.add_parser(
        "web", help="serve this cockpit in a browser, to whoever opens the URL with the token it prints",
        description="Serve the same app in a browser (textual-serve). Only requests that carry the token printed "
                    "at start (or the cookie the page gets for it) are answered. Each browser tab runs its own "
                    "cockpit, as the user who started this command, with the options given here.")
    _common(w, suppress=True)
    w.add_argument("--speed", type=arg.speed, default=argparse.SUPPRESS, metavar="N",
                   help="platform clock speed (x real time)")
    w.add_argument("--readonly", action="store_true", default=argparse.SUPPRESS, help="disable every action")
    w.add_argument("--role", choices=ROLES, default=argparse.SUPPRESS, help="a lower role for this run, as `cockpit --role`")
    w.add_argument("--host", type=arg.address, default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1). Another than loopback needs --allow-remote: "
                        "the token is then the only protection, and plain http can be read on the network")
    w.add_argument("--allow-remote", action="store_true",
                   help="allow a --host that is not loopback (prefer an SSH tunnel to 127.0.0.1)")
    w.add_argument("--port", type=arg.port, default=DEFAULT_PORT,
                   help=f"port, 0 to 65535 (default {DEFAULT_PORT}; 0: any free one, printed)")
    return w


def conflict(args: argparse.Namespace) -> str | None:
    """What argparse cannot see, as a line for the error."""
    from cockpit.web import is_loopback

    if not is_loopback(args.host) and not args.allow_remote:
        return (f"argument --host: {args.host} is not a loopback address: the token would be the only protection "
                "and plain http can be read on the network; add --allow-remote to serve it anyway")
    return None


def app_argv(args: argparse.Namespace) -> list[str]:
    """The command each browser session runs: this Python, `-m cockpit`, the options given here
    (never --reset: that is done once, here). A list: no shell ever parses it."""
    argv = [sys.executable, "-m", "cockpit"]
    for option in ("world", "db", "config", "speed", "role"):
        value = getattr(args, option, None)
        if value is not None:
            argv += [f"--{option}", str(value)]
    if getattr(args, "readonly", None):
        argv.append("--readonly")
    return argv


def _preflight(args: argparse.Namespace, cfg: Config) -> None:
    """What `cockpit` would refuse, refused now on one line rather than in every browser tab:
    the backends, the keys, the world and the store (seeded here if new, or reset with --reset)."""
    from cockpit import config as config_mod
    from cockpit.backends.factory import check
    from cockpit.cli_run import say_forgotten
    from cockpit.config import ConfigError
    from cockpit.keymap import all_bindings, clashes
    from cockpit.session import open_session

    check(cfg.backends)
    known = {b.id for b in all_bindings()}
    remapped = {k: v for k, v in cfg.keys.items() if k in known}
    problems = config_mod.check_keys(cfg, known, clashes(remapped) if remapped else [])
    if problems:
        raise ConfigError(problems)
    s = open_session(cfg, reset=bool(getattr(args, "reset", False)))
    say_forgotten(s)
    s.close()


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.cli import CliError
    from cockpit.web import CockpitServer, Guard, RedactingFormatter, is_loopback, listen, new_token, serve, url_host

    try:
        sock = listen(args.host, args.port)
    except OSError as e:
        raise CliError(f"web: cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    try:
        _preflight(args, cfg)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    token = new_token()  # printed once below; never written anywhere else
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(token, LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    loopback = is_loopback(args.host)
    server = CockpitServer(app_argv(args), args.host, port, Guard(token, f"cockpit_web_{port}", loopback))

    def started() -> None:
        print(f"cockpit web: open http://{url_host(args.host)}:{port}/?token={token}", flush=True)
        if not loopback:
            print(f"cockpit web: listening on {args.host} over plain http: the token is the only protection, "
                  "and anyone who can read the traffic can read it", file=sys.stderr, flush=True)

    ended = asyncio.run(serve(server, sock, started))
    print(f"cockpit web: stopped ({ended} browser session{'' if ended == 1 else 's'} ended)", flush=True)
    return 0
