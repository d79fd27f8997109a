"""`cockpit store check` and `cockpit store upgrade`: the store, looked after when a person asks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cockpit.config import Config

EXIT_BAD_INPUT = 2


def store_url(cfg: Config) -> str:
    """The store a command works on: --db, the config's, or the world's default."""
    if cfg.db:
        return cfg.db
    from cockpit import world as world_mod
    from cockpit.session import world_path
    from cockpit.store.db import default_url

    return default_url(world_mod.load(world_path(cfg)).name)


def run(args: argparse.Namespace, cfg: Config) -> int:
    from cockpit.store import db as store_db

    url = store_url(cfg)
    if "://" not in url and not Path(url).expanduser().exists():
        raise store_db.StoreError(f"store {url}: no such file")
    if args.store_command == "upgrade":
        before, after, backup = store_db.upgrade_store(url)
        if before == after:
            print(f"store {store_db.shown(url)}: at schema {after} already; nothing to do")
        else:
            kept = f"; the store as it was is kept in {backup}" if backup else ""
            print(f"store {store_db.shown(url)}: upgraded from schema {before} to {after}{kept}")
        return 0
    db = store_db.open_store(url)
    if args.store_command == "secure":
        return _secure(db, url, args)
    try:
        problems = store_db.integrity(db)
        from cockpit.engine.seed import holdings
        from cockpit.store.consistency import platform_problems

        if not problems:
            problems = platform_problems(db)
        if not problems and store_db.get_meta("world_name") is None and (held := holdings()):
            problems.append(f"it holds {held} but not the name of their world")
    finally:
        db.close()
    if problems:
        for p in problems:
            print(f"cockpit: store {store_db.shown(url)}: {p}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"store {store_db.shown(url)}: whole (schema {store_db.SCHEMA_VERSION})")
    return 0


def _secure(db, url: str, args: argparse.Namespace) -> int:
    from cockpit.store import guards
    from cockpit.store.db import shown

    try:
        said = guards.secure(db, engines=list(dict.fromkeys(args.engine)), sres=list(dict.fromkeys(args.sre)))
    finally:
        db.close()
    print(f"store {shown(url)}: roles are enforced by the database: " + "; ".join(said))
    return 0
