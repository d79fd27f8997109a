"""Putting a run together: world, store, engine, facade. The CLI and tests both start here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import peewee as pw

from cockpit import world as world_mod
from cockpit.config import Config
from cockpit.domain import World
from cockpit.engine.facade import Cockpit
from cockpit.engine.seed import ensure_seeded
from cockpit.store.db import default_url, open_store

if TYPE_CHECKING:
    from cockpit.engine.engine import Engine


@dataclass
class Session:
    world: World
    db: pw.Database
    cfg: Config
    cockpit: Cockpit
    seeded: bool
    engine: Engine | None = None

    def make_engine(self) -> Engine:
        """The engine for this store (imported here: numpy and APScheduler are not needed to paint)."""
        from cockpit.engine.engine import Engine

        if self.engine is None:
            self.engine = Engine(self.db, self.world, speed=self.cfg.speed, tick_s=self.cfg.tick_s)
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        self.db.close()


def world_path(cfg: Config) -> str:
    return cfg.world or str(world_mod.DEMO_WORLD)


def open_session(cfg: Config, *, engine: bool = False, reset: bool = False) -> Session:
    """Raises WorldError, StoreError (including SeedError) with messages fit for a user.

    With `engine`, the engine is built now; otherwise `make_engine()` builds it when wanted."""
    w = world_mod.load(world_path(cfg))
    db = open_store(cfg.db or default_url(w.name))
    try:
        seeded = ensure_seeded(db, w, reset=reset)
    except Exception:
        db.close()
        raise
    session = Session(w, db, cfg, Cockpit(cfg, w, db), seeded)
    if engine:
        session.cockpit.attach(session.make_engine())
    return session
