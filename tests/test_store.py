"""The store: WAL SQLite, seeded from one world, versioned and upgraded in place."""

from __future__ import annotations

import os
import sqlite3

import peewee as pw
import pytest

from cockpit import world
from cockpit.engine.seed import SeedError, ensure_seeded
from cockpit.store import db as store_db
from cockpit.store.db import StoreError, open_store, schema_version
from cockpit.store.models import ClockRow, ContainerRow, HostRow, LiveRow, MetricRow, PoolRow, ServiceRow, TemplateRow
from tests.conftest import SMALL


def test_a_new_store_is_wal_with_a_busy_timeout_and_a_version(tmp_path):
    db = open_store(str(tmp_path / "s.db"))
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert schema_version(db) == store_db.SCHEMA_VERSION
    db.close()


def test_default_store_lives_under_the_user_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    assert store_db.default_url("demo") == str(tmp_path / "d" / "cockpit" / "demo.db")


def test_seeding_writes_the_whole_platform(demo_db, demo_world):
    open_store(demo_db)
    assert HostRow.select().count() == demo_world.host_count
    assert ContainerRow.select().count() == sum(sum(s.containers.values()) for s in demo_world.services)
    assert {p.name for p in PoolRow.select()} == {p.name for p in demo_world.pools}
    assert {s.name for s in ServiceRow.select()} == {s.name for s in demo_world.services}
    assert TemplateRow.select().count() == len(demo_world.templates)
    assert ClockRow.get_by_id(1).t == demo_world.start.timestamp()
    # history for the sparklines, and a live row per scope before any engine ran
    assert MetricRow.select().where(MetricRow.t < demo_world.start.timestamp()).count() > 0
    assert LiveRow.select().count() == 1 + 3 + 14  # all, the IDCs, and each IDC/pool with hosts
    ecs = HostRow.select().where(HostRow.source == "ecs")
    assert all(h.instance_id and h.instance_id.startswith("i-") for h in ecs)


def test_containers_respect_capacity_from_the_start(demo_db):
    open_store(demo_db)
    rows = ServiceRow.select()
    mem = {s.name: s.memory_gb for s in rows}
    used: dict[int, float] = {}
    for c in ContainerRow.select():
        used[c.host] = used.get(c.host, 0.0) + mem[c.service]
    for h in HostRow.select():
        assert used.get(h.id, 0.0) <= h.memory_gb


def test_a_store_refuses_another_world(tmp_path, demo_db):
    db = open_store(demo_db)
    small = world.load(SMALL)
    with pytest.raises(SeedError, match="this store holds world 'demo', not 'small'"):
        ensure_seeded(db, small)


def test_an_edited_world_needs_reset(tmp_path, demo_db):
    text = SMALL.read_text()
    path = tmp_path / "w.yaml"
    path.write_text(text)
    db = open_store(str(tmp_path / "s.db"))
    assert ensure_seeded(db, world.load(path)) is True
    assert ensure_seeded(db, world.load(path)) is False
    path.write_text(text.replace("count: 6,", "count: 7,"))
    edited = world.load(path)
    with pytest.raises(SeedError, match="--reset"):
        ensure_seeded(db, edited)
    assert ensure_seeded(db, edited, reset=True) is True
    assert HostRow.select().count() == 16


def test_a_world_whose_containers_do_not_fit_is_refused_whole(tmp_path):
    text = SMALL.read_text().replace("containers: {yf: 20, ali: 4}", "containers: {yf: 500, ali: 4}")
    path = tmp_path / "w.yaml"
    path.write_text(text)
    db = open_store(str(tmp_path / "s.db"))
    with pytest.raises(SeedError, match=r"services feed: containers yf: placed \d+ of 500"):
        ensure_seeded(db, world.load(path))
    assert HostRow.select().count() == 0  # nothing half-written


def test_the_schema_upgrades_in_place(tmp_path, monkeypatch):
    path = str(tmp_path / "s.db")
    db = open_store(path)
    HostRow.insert(name="h1", idc="a", pool="p", group="g", hardware="x", cores=1, memory_gb=1, disk_gb=1,
                   source="physical", charge_type="owned", created_t=0).execute()
    db.close()

    def add_rack(db, migrator):
        from playhouse.migrate import migrate

        migrate(migrator.add_column("host", "rack", pw.CharField(null=True)))

    monkeypatch.setattr(store_db, "SCHEMA_VERSION", store_db.SCHEMA_VERSION + 1)
    monkeypatch.setitem(store_db.MIGRATIONS, store_db.SCHEMA_VERSION, add_rack)
    db = open_store(path)
    assert schema_version(db) == store_db.SCHEMA_VERSION
    cols = [c.name for c in db.get_columns("host")]
    assert "rack" in cols
    assert HostRow.select().count() == 1  # the data came along


def test_a_store_from_a_newer_cockpit_is_refused(tmp_path):
    path = str(tmp_path / "s.db")
    db = open_store(path)
    store_db.set_meta("schema_version", str(store_db.SCHEMA_VERSION + 5))
    db.close()
    with pytest.raises(StoreError, match="newer than this Cockpit"):
        open_store(path)


def test_an_unusable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create directory"):
        open_store(str(blocker / "sub" / "s.db"))


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="garbage.db"):
        open_store(str(path))


def test_bulk_insert_fills_defaults_and_encodes_json(tmp_path):
    db = open_store(str(tmp_path / "s.db"))
    store_db.bulk_insert(HostRow, [{"name": "h", "idc": "a", "pool": "p", "group": "g", "hardware": "x", "cores": 2,
                                    "memory_gb": 4, "disk_gb": 8, "labels": {"role": "web"}, "source": "vm",
                                    "charge_type": "owned", "created_t": 1.0}])
    h = HostRow.get(HostRow.name == "h")
    assert h.alive is True and h.status == "ready" and h.labels == {"role": "web"}
    raw = sqlite3.connect(str(tmp_path / "s.db")).execute("select labels from host").fetchone()[0]
    assert raw == '{"role":"web"}'
