"""The commands that run until they are stopped: the TUI (`cockpit`), the headless engine
(`cockpit engine`) and the simulated cloud's HTTP face (`cockpit serve cloud`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import signal
import sys

from cockpit import config as config_mod
from cockpit.cli import CliError
from cockpit.config import Config, ConfigError
from cockpit.store.db import data_dir


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    from cockpit import world as world_mod
    from cockpit.backends.aliyun import Credentials, CredentialsError
    from cockpit.backends.sim.cloud import Fault, SimCloudModel
    from cockpit.backends.sim.cloud_http import CloudServer

    w = world_mod.load(getattr(args, "world", None) or world_mod.DEMO_WORLD)
    faults = [Fault(action, code, status, times) for action, code, status, times in args.fault]
    try:
        model = SimCloudModel.from_world(w, latency_s=args.latency_ms / 1000, max_in_flight=args.max_in_flight,
                                         rate_per_s=args.rate, faults=faults)
    except ValueError as e:
        raise CliError(str(e)) from None
    for zone, itype, n in args.stock:
        if zone not in model.zones:
            raise CliError(f"--stock {zone}:{itype}={n}: no zone {zone!r} in the world's cloud IDC "
                           f"(zones: {', '.join(sorted(model.zones))})")
        model.zones[zone].stock[itype] = n
    try:
        creds = Credentials.from_env()  # the keys the simulated account answers to
    except CredentialsError as e:
        raise CliError(str(e)) from None
    try:
        server = CloudServer((args.host, args.port), model, {creds.access_key_id: creds.secret})
    except OSError as e:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    print(f"sim cloud listening on {server.endpoint} (region {model.region})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _log_to_file() -> None:
    try:
        data_dir().mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            data_dir() / "cockpit.log", maxBytes=1_000_000, backupCount=3
        )
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _real_platform_check(cfg: Config, world) -> None:
    """Before any screen: a real runtime the world does not match is one line, exit 2."""
    from cockpit.backends.factory import BackendError, real_platform_problem

    problem = real_platform_problem(cfg.backends, world)
    if problem:
        raise BackendError(problem)


def cmd_tui(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit import engine_child
    from cockpit.session import open_session, seed_in_background

    from cockpit.backends.factory import check

    check(cfg.backends)
    world, seeded = seed_in_background(cfg) if not args.reset else (None, lambda: None)
    from cockpit.app import create_app

    problems = []
    if cfg.keys:  # checked against every binding, which imports every view: only when there is something to check
        from cockpit.keymap import all_bindings, clashes

        known = {b.id for b in all_bindings()}
        remapped = {k: v for k, v in cfg.keys.items() if k in known}
        problems = config_mod.check_keys(cfg, known, clashes(remapped) if remapped else [])
    seeded()
    if problems:
        raise ConfigError(problems)
    _log_to_file()
    s = open_session(cfg, reset=bool(args.reset), world=world)
    say_forgotten(s)
    child = None
    try:
        _real_platform_check(cfg, s.world)
        factory = None if s.cockpit.requests is not None or cfg.readonly else s.make_engine
        if factory is not None and engine_child.runs_apart(cfg, s.world):
            from cockpit.session import world_path
            from cockpit.store.db import default_url

            child = engine_child.start(cfg, world_path(cfg), cfg.db or default_url(s.world.name), data_dir())
            s.cockpit.engine_expected = True  # the header says "starting" until its lease shows
            s.cockpit.engine_child = child.pid
            factory = None
        app = create_app(s.cockpit, cfg, factory)
        app.run()
        code = app.return_code or 0  # 1 when the app ended on an error
    finally:
        if child is not None:
            child.stop()
        s.close()
    # The app has closed and handed its lease back: leave now rather than wait for a thread still
    # reading the store for a screen that is gone (a big table's load takes a while).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)


def say_forgotten(s) -> None:
    if s.forgotten:
        shown = ", ".join(s.forgotten[:10]) + (" ..." if len(s.forgotten) > 10 else "")
        print(f"cockpit: --reset forgot {len(s.forgotten)} cloud instances the store tracked; they still run "
              f"(and bill) until released in the cloud: {shown}", file=sys.stderr)


def cmd_engine(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.session import open_session

    if cfg.readonly:
        raise CliError("engine: a read-only cockpit only watches; it never runs the engine")
    from cockpit.backends.factory import check

    check(cfg.backends)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    s = open_session(cfg, engine=True, reset=bool(getattr(args, "reset", False)))
    say_forgotten(s)
    try:
        asyncio.run(_engine_loop(s))
    finally:
        s.close()
    return 0


async def _engine_loop(s) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    engine = s.engine
    await asyncio.to_thread(engine.step_lease)  # know whether we are active before saying so
    engine.start(loop)
    said = None
    while not stop.is_set():
        state = "active" if engine.active else "standby"
        if state != said:
            holder = engine.lease.holder()
            print(f"engine {state}" + ("" if engine.active or holder is None else f" (active: {holder})"), flush=True)
            said = state
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            continue
    await asyncio.to_thread(engine.stop)
    print("engine stopped", flush=True)
