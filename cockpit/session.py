"""Putting a run together: world, store, engine, facade. The CLI and tests both start here."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import peewee as pw

from cockpit import world as world_mod
from cockpit.config import Config
from cockpit.domain import World
from cockpit.engine.facade import Cockpit
from cockpit.engine.seed import ensure_seeded, holdings, unreleased_cloud_hosts
from cockpit.store.consistency import platform_problems
from cockpit.store.db import StoreError, default_url, get_meta, open_store, shown
from cockpit.store.errors import WAY_OUT
from cockpit.store.guards import may_write

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
    forgotten: list[str] = field(default_factory=list)  # cloud instances a --reset forgot: they still run

    def make_engine(self) -> Engine:
        """The engine for this store (imported here: numpy and APScheduler are not needed to paint)."""
        from cockpit.engine.engine import Engine

        if self.engine is None:
            if self.cockpit.requests is not None:
                raise StoreError(self.cannot_write)
            from cockpit.backends.factory import make_cloud, make_discovery, make_front, make_init, make_runtime
            from cockpit.engine.ecs import DrainSettings
            from cockpit.store.db import data_dir
            from cockpit.store.models import HostRow

            b = self.cfg.backends
            from cockpit.backends.factory import BackendError, real_platform_problem

            problem = real_platform_problem(b, self.world)
            if problem:
                raise BackendError(problem)
            known = [(h.instance_id, h.zone, h.charge_type) for h in HostRow.select().where(
                HostRow.instance_id.is_null(False) & HostRow.released_t.is_null())]
            cloud_cfg = b.get("cloud", {})
            init_backend, init_settings = make_init(b.get("init", {}), self.world, data_dir())
            self.engine = Engine(
                self.db, self.world, speed=self.cfg.speed, tick_s=self.cfg.tick_s,
                cloud=make_cloud(cloud_cfg, self.world, known),
                drain=DrainSettings(batch=cloud_cfg.get("batch", 20), max_in_flight=cloud_cfg.get("max_in_flight", 20)),
                init=init_backend, init_settings=init_settings, expiry_warn_days=self.cfg.expiry_warn_days,
                registry_settings=b.get("registry", {}), autoscaling=self.cfg.autoscale,
                runtime=make_runtime(b.get("runtime", {})), discovery=make_discovery(b.get("discovery", {})),
                ready_checks=b.get("runtime", {}).get("kind", "sim") != "sim", front=make_front(b.get("front", {})),
                manager_ttl_s=float(b.get("discovery", {}).get("lock_ttl_s", 4.0)),
            )
            from cockpit.engine.requests import RequestDesk

            self.engine.desk = RequestDesk(self.cfg, self.world, self.db, self.engine)
        return self.engine

    @property
    def cannot_write(self) -> str:
        from cockpit.store.guards import ENGINE_GROUP

        return (f"store {shown(self.cfg.db or '')}: this database role may not change the platform (roles are "
                f"enforced): engines run as members of {ENGINE_GROUP}; this Cockpit asks them")

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        self.db.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def world_path(cfg: Config) -> str:
    return cfg.world or str(world_mod.DEMO_WORLD)


def open_session(cfg: Config, *, engine: bool = False, reset: bool = False, world: World | None = None) -> Session:
    """Raises WorldError, StoreError (including SeedError) with messages fit for a user.

    With `engine`, the engine is built now; otherwise `make_engine()` builds it when wanted."""
    w = world or world_mod.load(world_path(cfg))
    url = cfg.db or default_url(w.name)
    db = open_store(url, reset=reset)
    try:
        forgotten = _forgotten() if reset else []
        seeded = ensure_seeded(db, w, reset=reset)
        wrong = [] if seeded else platform_problems(db)
        if wrong:
            raise StoreError(f"{'; '.join(wrong[:3])}: the store is damaged; {WAY_OUT}")
        if forgotten:  # said in the new platform's event log too, where the next person looks
            from cockpit.engine import journal

            journal.event(w.start.timestamp(), "warn", "store", "reset",
                          f"reset: {len(forgotten)} cloud instances of the old platform may still run (and bill): "
                          + ", ".join(forgotten[:20]))
    except StoreError as e:
        db.close()
        text = str(e)
        raise type(e)(text if text.startswith("store ") else f"store {shown(url)}: {text}") from None
    except Exception:
        db.close()
        raise
    session = Session(w, db, cfg, Cockpit(cfg, w, db), seeded, forgotten=forgotten)
    if not may_write(db):  # an SRE's role on a store that enforces roles: actions are asked of an engine
        from cockpit.engine.requests import RequestClient

        session.cockpit.requests = RequestClient(db, cfg)
    if engine:
        try:
            session.cockpit.attach(session.make_engine())
        except Exception:
            db.close()
            raise
    return session


def _forgotten() -> list[str]:
    """Before a reset: the cloud instances the store still tracks (read as far as the store allows)."""
    try:
        return unreleased_cloud_hosts()
    except (StoreError, pw.PeeweeException, sqlite3.Error):  # damaged: the reset goes on, knowing nothing
        return []


def seed_in_background(cfg: Config) -> tuple[World, Callable[[], None]]:
    """On a store that is not seeded yet, seed it in a child process while the caller carries on
    (the TUI imports Textual meanwhile: on two cores the two overlap). Returns the world and a
    function that waits for the child and raises its error, if any (nothing to wait for on a
    seeded store)."""
    w = world_mod.load(world_path(cfg))
    url = cfg.db or default_url(w.name)
    db = open_store(url)
    try:
        needed = get_meta("world_name") is None and holdings() is None  # else open_session says why
    finally:
        db.close()  # a connection must not cross a fork
    if not needed or not hasattr(os, "fork"):
        return w, lambda: None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: seed, report, leave without running the parent's cleanup
        os.close(read_end)
        code, message = 0, b""
        try:
            child_db = open_store(url)
            ensure_seeded(child_db, w)
            child_db.close()
        except StoreError as e:
            code, message = 2, str(e).encode()
        except BaseException as e:  # noqa: BLE001 - whatever it is, the parent must hear of it
            code, message = 1, f"{type(e).__name__}: {e}".encode()
        os.write(write_end, message)
        os._exit(code)
    os.close(write_end)

    def wait() -> None:
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise StoreError(b"".join(chunks).decode(errors="replace") or "seeding the store failed")

    return w, wait
