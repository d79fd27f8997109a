from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cockpit import world
from cockpit.config import Config
from cockpit.engine.seed import ensure_seeded
from cockpit.identity import os_user
from cockpit.session import open_session
from cockpit.store.db import open_store

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo-world.yaml"
SMALL = Path(__file__).resolve().parent / "data" / "small-world.yaml"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No test reads or writes the real user's data or config directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("COCKPIT_CONFIG", raising=False)


class Roles:
    """The role mapping the tests run under: a file of their own ($COCKPIT_ROLES), never the
    machine's. The tests run as root, so the file is root's, as a real mapping must be."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, text: str) -> Path:
        self.path.write_text(text)
        os.chmod(self.path, 0o644)  # whatever the umask: group and others may not write it
        return self.path

    def grant(self, role: str, user: str | None = None) -> Path:
        """`user` (this process's by default) gets `role`."""
        return self.write(f"users: {{{user or os_user().name}: {role}}}\n")


@pytest.fixture(autouse=True)
def roles(tmp_path, monkeypatch) -> Roles:
    """Who the tests are: this process's OS user, an operator (tests of admin actions grant admin)."""
    r = Roles(tmp_path / "roles.yaml")
    r.grant("operator")
    monkeypatch.setenv("COCKPIT_ROLES", str(r.path))
    return r


@pytest.fixture(scope="session")
def demo_world():
    return world.load(DEMO)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory, demo_world):
    """The demo store, seeded once; tests get their own copy."""
    path = tmp_path_factory.mktemp("template") / "demo.db"
    db = open_store(str(path))
    ensure_seeded(db, demo_world)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture
def demo_db(tmp_path, seeded_template) -> str:
    path = tmp_path / "demo.db"
    shutil.copy(seeded_template, path)
    return str(path)


def make_cfg(db: str, **kw) -> Config:
    """A config for this process's OS user, with the role the mapping gives (`role=` asks for a
    lower one). The engine's autoscaler changes the platform on its own: tests of other things keep it off."""
    role = kw.pop("role", None)
    return Config(db=db, asked_role=role, tick_s=kw.pop("tick_s", 0.2), autoscale=kw.pop("autoscale", False), **kw)


@pytest.fixture
def session(demo_db):
    s = open_session(make_cfg(demo_db))
    yield s
    s.close()


# --- PostgreSQL: the store's tests run on it as well as on SQLite ---------------------------------


@pytest.fixture(scope="session")
def pg_cluster():
    from tests import pg

    cluster = pg.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_demo_template(pg_cluster, demo_world) -> str:
    """A PostgreSQL database seeded with the demo world, to copy per test (CREATE DATABASE ... TEMPLATE)."""
    name = pg_cluster.new_db()
    db = open_store(pg_cluster.url(name))
    ensure_seeded(db, demo_world)
    db.close()
    return name


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """An empty store, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "s.db")
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.new_db())


@pytest.fixture(params=["sqlite", "postgres"])
def demo_url(request) -> str:
    """A store seeded with the demo world, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("demo_db")
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.new_db(template=request.getfixturevalue("pg_demo_template")))
