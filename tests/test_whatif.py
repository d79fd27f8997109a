"""What-if previews on the demo platform: dependencies, metrics, capacity still needed, apply."""

from __future__ import annotations

import pytest

from cockpit.core.bootstrap import hosts_from_world, place_initial
from cockpit.core.placement import HostTable, Request, place
from cockpit.core.placement.metrics import measure
from cockpit.core.whatif import Catalog, WhatIf, WhatIfError, build, document, preview
from cockpit.domain import Host, PlacementRules, Service, Traffic
from cockpit.engine.engine import Engine
from cockpit.store.db import SCHEMA_VERSION, StoreError, open_store, upgrade_store
from cockpit.store.models import ContainerRow, HostRow, TaskRow
from tests.test_engine import FakeClock


@pytest.fixture(scope="module")
def demo(demo_world):
    table, _ = place_initial(demo_world, hosts_from_world(demo_world))
    cat = Catalog({s.name: s for s in demo_world.services}, {t.sid: t for t in demo_world.templates},
                  {h.name: h for h in demo_world.hardware}, demo_world.shared_pool.name)
    return table, cat


def test_feed_plus_ten_previews_user_plus_four_and_card_plus_three(demo):
    table, cat = demo
    p = preview(table, cat, WhatIf("feed", None, 10, "tucheng"))
    assert [(d.service, d.count) for d in p.parts] == [("feed", 10), ("user", 4), ("relation", 1), ("card", 3)]
    assert all(d.plan.placed == d.count for d in p.parts)
    assert table.counts.sum() == sum(sum(s.containers.values()) for s in cat.services.values())  # untouched


def test_a_preview_by_template_name_or_sid_is_the_same(demo):
    table, cat = demo
    a = build(cat, (), target="feed-expand", count=10)
    b = build(cat, (), target="sid:101", count=10)
    assert a == b and a.sid == 101


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"target": "fed", "count": 1}, "no service named 'fed'"),
        ({"target": "feed", "count": 0}, "count must be between 1"),
        ({"target": "feed", "count": "ten"}, "count must be a whole number"),
        ({"target": "feed", "count": 1, "idc": "mars"}, "no IDC named 'mars'"),
        ({"target": "feed", "count": 1, "strategy": "best"}, "strategy must be one of"),
        ({"target": "feed", "count": 1, "filters": "disk >= lots"}, "'lots' is not an amount"),
        ({"target": "feed", "count": 1, "filters": "role = web"}, "is not a constraint like"),
        ({"target": "feed", "count": 1, "strategy": "custom", "weights": "speed=1"}, "unknown scorer 'speed'"),
        ({"target": "feed", "count": 1, "strategy": "custom"}, "custom needs weights"),
        ({"target": "sid:999", "count": 1}, "no template with sid 999"),
        ({"target": "feed", "count": 1, "seed": -5}, "seed must be from 0 to"),
        ({"target": "feed", "count": 1, "strategy": "custom", "weights": "with:nosuch=1"}, "no service named 'nosuch'"),
        ({"target": "feed", "count": 1, "seed": 2**64}, "seed must be from 0 to"),
    ],
)
def test_bad_requests_say_what_is_wrong(demo, fields, message):
    _, cat = demo
    with pytest.raises(WhatIfError, match=message):
        build(cat, (), idcs={"yongfeng", "tucheng", "aliyun"}, **fields)


def test_what_does_not_fit_borrows_shared_hosts_first_then_ecs_with_its_cost(demo):
    table, cat = demo
    p = preview(table, cat, WhatIf("feed", None, 3000, "tucheng", "binpack"))
    need = p.root.need
    assert p.root.plan.unplaced == need.unplaced > 0
    assert need.shared_hosts == 80 and need.shared_containers == 320  # tucheng's shared pool: 80 old hosts, 4 each
    assert need.ecs_containers == need.unplaced - need.shared_containers
    assert need.ecs_hosts == -(-need.ecs_containers // 8)  # ecs.c6.4xlarge (16c/32G) takes 8 feed containers
    assert need.cost_per_hour == pytest.approx(need.ecs_hosts * 3.8)
    # dependants do not borrow the hosts feed already borrowed
    user = next(d for d in p.dependencies if d.service == "user")
    assert user.need.shared_hosts == 0


def test_a_service_without_ecs_settings_says_where_containers_cannot_go(demo):
    table, cat = demo
    p = preview(table, cat, WhatIf("etl", None, 5000, "yongfeng"))
    assert p.root.need.nowhere > 0 and "no template with ECS settings" in p.root.need.note


def _two_hosts():
    hosts = [Host(i + 1, f"h{i}", "a", "p", "g", "x", 32, 32, 1000, {}, "physical", None, "owned", 0) for i in range(2)]
    s = Service("web", "http", "i:1", "p", 2, 4, 0, (), {}, Traffic(1, 1), PlacementRules())
    return HostTable.build(hosts, [s]), s


def test_metrics_measure_balance_fragmentation_and_blast_radius():
    table, s = _two_hosts()
    r = Request.for_service(s, 10, strategy="binpack")
    after = table.copy()
    plan = place(after, r)
    m = measure(table, after, plan)
    assert (m.placed, m.unplaced, m.hosts_touched) == (10, 0, 2)
    # h0 full on memory (8 x 4 GB) with 16 cores free: stranded; h1 has 2 containers
    assert m.stranded_cores == 16.0 and m.stranded_memory_gb == 0.0
    assert m.imbalance_range_after == pytest.approx(1.0 - 0.25)
    assert m.blast_radius == 8 and m.blast_host == "h0"
    assert m.largest_fit == 6 and m.largest_fit_host == "h1"


def test_the_plan_document_has_placements_unplaced_metrics_and_dependencies(demo):
    table, cat = demo
    doc = document(preview(table, cat, WhatIf("feed", None, 10, "tucheng")))
    assert sum(p["count"] for p in doc["placements"]) == 10
    assert {"host", "service", "count"} == set(doc["placements"][0])
    assert doc["unplaced"] == 0 and doc["metrics"]["placed"] == 10
    assert [d["service"] for d in doc["dependencies"]] == ["user", "relation", "card"]
    assert doc["dependencies"][0]["via"] == [101]


def test_applying_a_plan_starts_its_containers_and_re_places_what_no_longer_fits(session):
    c = session.cockpit
    req = c.whatif(target="feed", count=40, idc="tucheng", strategy="binpack")
    p = c.preview(req)
    before = ContainerRow.select().count()
    # between preview and apply, a host of the plan dies
    victim = p.before.names[next(iter(p.root.plan.per_host()))]
    HostRow.update(alive=False).where(HostRow.name == victim).execute()
    outcome = c.apply_plan(p)
    assert outcome.ok and outcome.task is not None
    real = FakeClock()
    engine = Engine(session.db, session.world, real_clock=real)
    engine.step_lease()
    real.t += 1
    engine.run_tasks()
    task = TaskRow.get_by_id(outcome.task)
    assert task.state == "done"
    total = sum(d.plan.placed for d in p.parts)
    assert ContainerRow.select().count() == before + total
    assert task.progress["feed"]["replanned"] > 0 and task.progress["feed"]["lost"] == 0
    victim_id = HostRow.get(HostRow.name == victim).id
    assert ContainerRow.select().where((ContainerRow.task == task.id) & (ContainerRow.host == victim_id)).count() == 0
    assert all(r.ref for r in ContainerRow.select().where(ContainerRow.task == task.id))
    engine.stop()


def test_apply_is_refused_in_read_only_mode_and_audited(session):
    session.cockpit.cfg.readonly = True
    p = session.cockpit.preview(session.cockpit.whatif(target="feed", count=5))
    outcome = session.cockpit.apply_plan(p)
    assert not outcome.ok and "read-only" in outcome.message
    assert TaskRow.select().count() == 0


def test_a_version_1_store_upgrades_when_asked(tmp_path):
    path = str(tmp_path / "old.db")
    db = open_store(path)
    ContainerRow.insert(service="feed", host=1, idc="a", created_t=0, name="x").execute()
    # take the store back to schema 1: what versions 2, 3 and 4 added goes
    db.execute_sql("DROP INDEX container_name")
    for column in ("ref", "name", "state", "address", "ports"):
        db.execute_sql(f'ALTER TABLE container DROP COLUMN "{column}"')
    db.execute_sql("DROP INDEX host_status")
    for column in ("init_task", "order", "expiry_warned", "address"):
        db.execute_sql(f'ALTER TABLE host DROP COLUMN "{column}"')
    for table in ("ecs_order", "ecs_call", "pool_move", "call", "registry_image", "manifest", "replication",
                  "replication_task", "registry_health"):
        db.execute_sql(f'DROP TABLE "{table}"')
    db.execute_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(StoreError, match="cockpit store upgrade"):
        open_store(path)
    assert upgrade_store(path)[:2] == (1, SCHEMA_VERSION)
    db = open_store(path)
    assert "ref" in [c.name for c in db.get_columns("container")]
    assert {"init_task", "order", "expiry_warned", "address"} <= {c.name for c in db.get_columns("host")}
    assert db.table_exists("ecs_order") and db.table_exists("pool_move") and db.table_exists("call")
    assert db.table_exists("replication")
    assert ContainerRow.select().count() == 1 and ContainerRow.get().name == "feed-0-1"
