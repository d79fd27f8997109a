"""Store faults as a user meets them on the command line: one line, exit 2, the store left whole;
`cockpit store check` and `cockpit store upgrade` when a person asks."""

from __future__ import annotations

import sqlite3

import pytest

from cockpit.cli import main
from cockpit.config import Config
from cockpit.session import open_session
from cockpit.store import db as store_db
from cockpit.store.db import open_store
from cockpit.store.models import EventRow, HostRow, Meta, ScaleRuleRow
from tests.test_store import _downgrade_to_v3, scribble_page


def _ecs_hosts_of_a_finished_order(n: int) -> None:
    rows = [{"name": f"ecs-7-{k:04d}", "idc": "aliyun", "pool": "feed-web", "group": "order-7", "hardware": "ecs-c6",
             "cores": 16, "memory_gb": 32, "disk_gb": 200, "source": "ecs", "zone": "cn-beijing-h",
             "charge_type": "payg", "price": 3.8, "created_t": 0.0, "instance_id": f"i-order7-{k:04d}",
             "order": 7, "address": f"172.16.7.{k % 250}"} for k in range(1, n + 1)]
    HostRow.insert_many(rows).execute()


def test_a_read_command_on_a_store_missing_its_world_name_refuses_and_wipes_nothing(demo_db, capsys):
    db = open_store(demo_db)
    _ecs_hosts_of_a_finished_order(500)
    Meta.delete().where(Meta.key == "world_name").execute()
    db.close()
    assert main(["hosts", "--db", demo_db]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"cockpit: store {demo_db}: the store holds 2,560 hosts") and "cockpit --reset" in err
    db = open_store(demo_db)
    assert HostRow.select().count() == 2560  # the 500 cloud hosts still tracked: they still run, and bill
    assert HostRow.select().where(HostRow.order == 7).count() == 500
    db.close()


def test_a_read_command_on_a_store_without_its_meta_table_refuses_in_one_line(demo_db, capsys):
    con = sqlite3.connect(demo_db)
    con.execute("DROP TABLE meta")
    con.commit()
    con.close()
    assert main(["pools", "--db", demo_db]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "meta table is missing" in err
    assert "meta" not in [r[0] for r in sqlite3.connect(demo_db).execute("SELECT name FROM sqlite_master")]


def test_a_damaged_page_is_one_line_on_the_command_line_and_store_check_finds_it(demo_db, capsys):
    scribble_page(demo_db, "container")
    assert main(["hosts", "--db", demo_db]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "damaged" in err and "Traceback" not in err
    assert main(["store", "check", "--db", demo_db]) == 2
    assert "cockpit: store" in capsys.readouterr().err


def test_store_check_says_a_whole_store_is_whole(demo_db, capsys):
    assert main(["store", "check", "--db", demo_db]) == 0
    assert capsys.readouterr().out.strip() == f"store {demo_db}: whole (schema {store_db.SCHEMA_VERSION})"


def test_an_old_store_is_upgraded_only_when_asked(demo_db, capsys):
    _downgrade_to_v3(demo_db)
    assert main(["hosts", "--db", demo_db]) == 2
    assert "run `cockpit store upgrade --db" in capsys.readouterr().err
    assert main(["store", "upgrade", "--db", demo_db]) == 0
    out = capsys.readouterr().out
    assert f"upgraded from schema 3 to {store_db.SCHEMA_VERSION}" in out and f"{demo_db}.v3.bak" in out
    assert main(["hosts", "--db", demo_db, "--json"]) == 0
    # schema 6 brought autoscaling rules as data: the world's, written when it was next opened with it
    db = open_store(demo_db)
    assert [r.name for r in ScaleRuleRow.select().order_by(ScaleRuleRow.position)] == \
        ["cpu-over-50", "daily-peaks", "hot-events", "keep-cpu-at-42", "look-ahead"]
    db.close()


def test_reset_names_the_cloud_instances_it_forgets(demo_db):
    db = open_store(demo_db)
    _ecs_hosts_of_a_finished_order(3)
    db.close()
    s = open_session(Config(db=demo_db), reset=True)
    try:
        assert s.forgotten == ["i-order7-0001", "i-order7-0002", "i-order7-0003"]
        assert HostRow.select().where(HostRow.order == 7).count() == 0
        ev = EventRow.get(EventRow.scope == "reset")
        assert "3 cloud instances of the old platform may still run" in ev.message and "i-order7-0002" in ev.message
    finally:
        s.close()


def test_a_store_that_is_not_a_database_is_one_line(tmp_path, capsys):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"\x00garbage" * 1000)
    assert main(["costs", "--db", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err


def test_a_postgresql_store_that_does_not_answer_is_one_line(capsys):
    assert main(["hosts", "--db", "postgresql://nobody@/nodb?host=/nonexistent&port=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cockpit: store")


@pytest.mark.parametrize("damage, says", [
    ("DELETE FROM clock", "the platform clock is missing"),
    ("UPDATE host SET cores = 'abc' WHERE name = 'yf-feed-new-0001'", "'yf-feed-new-0001' has a cores that is not"),
    ("UPDATE service SET spec = '[]' WHERE name = 'feed'", "service 'feed' has a spec that is not a mapping"),
    ("UPDATE container SET host = 999999 WHERE id = 1", "is on host id 999999, which is not in the store"),
])
def test_a_platform_that_does_not_hold_together_is_one_line_and_store_check_names_it(demo_db, capsys, damage, says):
    con = sqlite3.connect(demo_db)
    con.execute(damage)
    con.commit()
    con.close()
    assert main(["hosts", "--db", demo_db]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cockpit: store") and "damaged" in err, err
    assert main(["store", "check", "--db", demo_db]) == 2
    assert says in capsys.readouterr().err


def test_store_commands_on_a_path_that_is_not_there_create_nothing(tmp_path, capsys):
    missing = tmp_path / "nothing.db"
    assert main(["store", "check", "--db", str(missing)]) == 2
    assert main(["store", "upgrade", "--db", str(missing)]) == 2
    assert "no such file" in capsys.readouterr().err and not missing.exists()
