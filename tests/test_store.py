"""The store, on SQLite and on a real PostgreSQL: seeded from one world, all or nothing; never
re-seeded, migrated or repaired behind the user's back; damaged stores refused in one line."""

from __future__ import annotations

import os
import sqlite3

import peewee as pw
import pytest

from cockpit import world
from cockpit.engine.seed import SeedError, ensure_seeded
from cockpit.store import db as store_db
from cockpit.store.db import StoreError, open_store, reset_store, upgrade_store
from cockpit.store.models import (
    CallRow,
    ClockRow,
    ContainerRow,
    HostRow,
    LiveRow,
    ManifestRow,
    Meta,
    MetricRow,
    PoolRow,
    RegistryHealthRow,
    RegistryImageRow,
    ReplicationRow,
    ReplicationTaskRow,
    ScaleDecisionRow,
    ScaleMemoryRow,
    ScaleRuleRow,
    ServiceMetricRow,
    ServiceRow,
    TemplateRow,
)
from tests.conftest import SMALL


def _version() -> int:
    return int(Meta.get(Meta.key == "schema_version").value)


def test_a_new_sqlite_store_is_wal_with_a_busy_timeout_and_a_version(tmp_path):
    db = open_store(str(tmp_path / "s.db"))
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert _version() == store_db.SCHEMA_VERSION
    db.close()


def test_a_new_store_gets_the_whole_schema(store_url):
    db = open_store(store_url)
    assert store_db.problems(db) == []
    assert _version() == store_db.SCHEMA_VERSION
    db.close()


def test_default_store_lives_under_the_user_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    assert store_db.default_url("demo") == str(tmp_path / "d" / "cockpit" / "demo.db")


def test_seeding_writes_the_whole_platform(demo_url, demo_world):
    db = open_store(demo_url)
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
    db.close()


def test_every_container_has_a_name_an_address_and_its_ports(demo_url):
    db = open_store(demo_url)
    feed = ContainerRow.select().where(ContainerRow.service == "feed").first()
    host = HostRow.get_by_id(feed.host)
    assert feed.state == "running" and feed.address == host.address and host.address.startswith("10.")
    assert [cp for cp, _ in feed.ports] == [8080] and feed.ports[0][1] >= 31000
    relation = ContainerRow.select().where(ContainerRow.service == "relation").first()
    assert relation.ports == [[9090, 9090]]  # host ports are bound as they are
    names = [c.name for c in ContainerRow.select(ContainerRow.name)]
    assert len(set(names)) == len(names)
    by_host: dict[int, list[int]] = {}
    for c in ContainerRow.select():
        by_host.setdefault(c.host, []).extend(hp for _, hp in c.ports)
    assert all(len(ports) == len(set(ports)) for ports in by_host.values())  # no host port given twice
    db.close()


def test_new_rows_after_seeding_get_fresh_ids(demo_url):
    """PostgreSQL's sequences move past the ids seeding gave explicitly."""
    db = open_store(demo_url)
    n = HostRow.select().count()
    new = HostRow.insert(name="extra-1", idc="aliyun", pool="shared", group="g", hardware="ecs-c6", cores=1,
                         memory_gb=1, disk_gb=1, source="ecs", charge_type="payg", created_t=0).execute()
    assert new == n + 1
    db.close()


def test_settings_are_upserted_on_both_databases(store_url):
    db = open_store(store_url)
    store_db.set_meta("k", "1")
    store_db.set_meta("k", "2")
    assert store_db.get_meta("k") == "2" and Meta.select().where(Meta.key == "k").count() == 1
    db.close()


def test_containers_respect_capacity_from_the_start(demo_db):
    open_store(demo_db)
    rows = ServiceRow.select()
    mem = {s.name: s.memory_gb for s in rows}
    used: dict[int, float] = {}
    for c in ContainerRow.select():
        used[c.host] = used.get(c.host, 0.0) + mem[c.service]
    for h in HostRow.select():
        assert used.get(h.id, 0.0) <= h.memory_gb


def test_a_store_refuses_another_world(demo_url):
    db = open_store(demo_url)
    small = world.load(SMALL)
    with pytest.raises(SeedError, match="this store holds world 'demo', not 'small'"):
        ensure_seeded(db, small)
    db.close()


def test_an_edited_world_needs_reset(tmp_path, store_url):
    text = SMALL.read_text()
    path = tmp_path / "w.yaml"
    path.write_text(text)
    db = open_store(store_url)
    assert ensure_seeded(db, world.load(path)) is True
    assert ensure_seeded(db, world.load(path)) is False
    path.write_text(text.replace("count: 6,", "count: 7,"))
    edited = world.load(path)
    with pytest.raises(SeedError, match="--reset"):
        ensure_seeded(db, edited)
    assert ensure_seeded(db, edited, reset=True) is True
    assert HostRow.select().count() == 16
    db.close()


def test_a_world_whose_containers_do_not_fit_is_refused_whole(tmp_path, store_url):
    text = SMALL.read_text().replace("containers: {yf: 20, ali: 4}", "containers: {yf: 500, ali: 4}")
    path = tmp_path / "w.yaml"
    path.write_text(text)
    db = open_store(store_url)
    with pytest.raises(SeedError, match=r"services feed: containers yf: placed \d+ of 500"):
        ensure_seeded(db, world.load(path))
    assert HostRow.select().count() == 0  # nothing half-written
    db.close()


# --- never re-seeded, migrated or repaired behind the user's back ---------------------------------


def test_a_store_that_lost_its_world_name_is_refused_not_seeded_again(demo_url, demo_world):
    db = open_store(demo_url)
    HostRow.update(pool="shared").where(HostRow.name == "yf-feed-new-0001").execute()
    Meta.delete().where(Meta.key == "world_name").execute()
    hosts = HostRow.select().count()
    with pytest.raises(SeedError, match=r"holds 2,060 hosts.*world name is missing.*damaged.*--reset"):
        ensure_seeded(db, demo_world)
    assert HostRow.select().count() == hosts
    assert HostRow.get(HostRow.name == "yf-feed-new-0001").pool == "shared"  # the platform as it was
    db.close()


def test_a_store_without_its_meta_table_is_refused_and_left_alone(demo_url):
    db = open_store(demo_url)
    db.drop_tables([Meta])
    db.close()
    with pytest.raises(StoreError, match="meta table is missing: the store is damaged; restore a backup"):
        open_store(demo_url)
    db = store_db.connect(demo_url)
    assert "meta" not in db.get_tables()  # not recreated
    db.close()


@pytest.mark.parametrize("value", ["abc", "0", "-3", ""])
def test_a_schema_version_that_is_not_a_version_is_refused(store_url, value):
    db = open_store(store_url)
    store_db.set_meta("schema_version", value)
    db.close()
    with pytest.raises(StoreError, match=f"schema version {value!r} is not a version: the store is damaged"):
        open_store(store_url)


def test_a_dropped_table_is_refused_not_recreated(demo_url):
    db = open_store(demo_url)
    db.drop_tables([ContainerRow])
    db.close()
    with pytest.raises(StoreError, match="table container is missing: the store is damaged"):
        open_store(demo_url)
    db = store_db.connect(demo_url)
    assert "container" not in db.get_tables()
    db.close()


def test_bad_json_in_a_column_is_a_one_line_error_naming_the_column(demo_url):
    db = open_store(demo_url)
    db.execute_sql("UPDATE host SET labels = 'not json' WHERE name = 'yf-feed-new-0001'")
    with pytest.raises(StoreError, match=r"column host.labels holds 'not json', which is not JSON: the store is damaged"):
        list(HostRow.select())
    db.close()


def scribble_page(path: str, table: str) -> None:
    """Damage a SQLite store the way a bad disk does: random bytes over a table's first page."""
    db = open_store(path)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute_sql("PRAGMA page_size").fetchone()[0]
    root = db.execute_sql("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    db.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(os.urandom(page))


def test_a_damaged_page_is_refused_in_one_line(tmp_path, demo_db):
    scribble_page(demo_db, "host")
    with pytest.raises(StoreError) as e:
        s = open_store(demo_db)
        list(HostRow.select())  # if opening did not read the page, reading it must still say so
        s.close()
    assert "damaged" in str(e.value) and "\n" not in str(e.value)


def test_a_full_disk_while_seeding_leaves_the_store_empty_and_says_so(tmp_path, demo_world):
    path = str(tmp_path / "s.db")
    db = open_store(path)
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages + 40}")  # the disk fills part-way through seeding
    with pytest.raises(StoreError, match=r"seeding the store: the disk is full .*nothing was written"):
        ensure_seeded(db, demo_world)
    assert HostRow.select().count() == 0 and ContainerRow.select().count() == 0
    assert store_db.get_meta("world_name") is None
    db.execute_sql("PRAGMA max_page_count = 1073741823")  # room again: the same store seeds
    assert ensure_seeded(db, demo_world) is True
    db.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="garbage.db"):
        open_store(str(path))


def test_a_file_of_another_program_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (t TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a Cockpit store"):
        open_store(str(path))
    with pytest.raises(StoreError, match="not a Cockpit store"):
        open_store(str(path), reset=True)


def test_a_store_path_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo.db")
    with pytest.raises(StoreError, match="not a regular file"):
        open_store(str(tmp_path / "fifo.db"))


def test_an_unusable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create directory"):
        open_store(str(blocker / "sub" / "s.db"))


def test_a_store_from_a_newer_cockpit_is_refused(store_url):
    db = open_store(store_url)
    store_db.set_meta("schema_version", str(store_db.SCHEMA_VERSION + 5))
    db.close()
    with pytest.raises(StoreError, match="newer than this Cockpit"):
        open_store(store_url)


# --- upgrades: asked for, kept in a backup, all or nothing -----------------------------------------


def _downgrade_to_v3(url: str) -> None:
    """The demo store as Cockpit 0.1 (schema 3) left it: no addresses, names, ports, call table,
    registry or autoscaling tables."""
    db = open_store(url)
    db.drop_tables([CallRow, RegistryImageRow, ManifestRow, ReplicationRow, ReplicationTaskRow, RegistryHealthRow,
                    ScaleRuleRow, ScaleMemoryRow, ScaleDecisionRow, ServiceMetricRow])
    db.execute_sql('DROP INDEX IF EXISTS container_name')
    for table, col in (("host", "address"), ("container", "name"), ("container", "state"), ("container", "address"),
                       ("container", "ports")):
        db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{col}"')
    store_db.set_meta("schema_version", "3")
    db.close()


def test_an_older_store_is_refused_until_upgraded_and_the_upgrade_keeps_a_backup(demo_url):
    _downgrade_to_v3(demo_url)
    with pytest.raises(StoreError, match=rf"schema version 3; this Cockpit uses {store_db.SCHEMA_VERSION}: run `cockpit store upgrade"):
        open_store(demo_url)
    before, after, backup = upgrade_store(demo_url)
    assert (before, after) == (3, store_db.SCHEMA_VERSION)
    if "://" not in demo_url:
        assert backup and os.path.exists(backup)
        con = sqlite3.connect(backup)
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
        con.close()
    db = open_store(demo_url)
    assert store_db.problems(db) == []
    feed = ContainerRow.select().where(ContainerRow.service == "feed").first()
    assert feed.name and feed.state == "running" and feed.ports[0][0] == 8080
    assert feed.address == HostRow.get_by_id(feed.host).address is not None
    assert ContainerRow.select().where(ContainerRow.name.is_null()).count() == 0
    db.close()


def test_a_migration_that_fails_half_way_changes_nothing(demo_url, monkeypatch):
    _downgrade_to_v3(demo_url)

    def broken(db, migrator):
        from playhouse.migrate import migrate

        migrate(migrator.add_column("host", "address", pw.CharField(null=True)))
        raise pw.OperationalError("the disk went away")

    monkeypatch.setitem(store_db.MIGRATIONS, 4, broken)
    with pytest.raises(StoreError, match="upgrade from schema 3: the disk went away; nothing was written"):
        upgrade_store(demo_url)
    db = store_db.connect(demo_url)
    assert "address" not in {c.name for c in db.get_columns("host")}
    assert db.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
    db.close()


def test_reset_starts_again_from_the_world_even_on_a_damaged_store(demo_url, demo_world):
    db = open_store(demo_url)
    store_id = store_db.get_meta("store_id")
    Meta.delete().where(Meta.key == "world_name").execute()
    db.drop_tables([TemplateRow])
    db.close()
    db = open_store(demo_url, reset=True)
    assert ensure_seeded(db, demo_world, reset=True) is True
    assert store_db.problems(db) == [] and HostRow.select().count() == demo_world.host_count
    assert store_db.get_meta("store_id") != store_id  # tokens of the new platform never repeat the old one's
    db.close()


def test_reset_is_one_transaction(store_url):
    db = open_store(store_url)
    store_db.set_meta("marker", "x")
    with pytest.raises(RuntimeError):
        with db.atomic():
            reset_store(db)
            raise RuntimeError("stop half-way")
    assert store_db.get_meta("marker") == "x"
    db.close()
