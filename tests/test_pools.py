"""Hosts between pools: moves re-place containers first, refuse when they cannot, are recorded;
the day/night swap; releasing and renewing cloud hosts; prepaid hosts expiring."""

from __future__ import annotations

from datetime import datetime

import pytest

from cockpit.backends.sim.cloud import SimCloud, SimCloudModel
from cockpit.core.costs import CostHost, accrued, breakdown, expiring, per_hour
from cockpit.engine.engine import Engine
from cockpit.identity import os_user
from cockpit.store.models import AuditRow, ContainerRow, EventRow, HostRow, PoolMoveRow, TaskRow
from tests.test_engine import FakeClock


def engine_for(session, **kw) -> tuple[Engine, FakeClock]:
    real = FakeClock()
    e = Engine(session.db, session.world, real_clock=real, **kw)
    assert e.step_lease()
    return e, real


def run_tasks(e: Engine, real: FakeClock) -> None:
    real.t += 1
    e.tick()
    e.run_tasks()


def test_giving_hosts_back_re_places_their_containers_and_records_the_move(session):
    e, real = engine_for(session)
    before = ContainerRow.select().count()
    assert session.cockpit.move_hosts(to_pool="shared", from_pool="feed-web", idc="tucheng", count=10,
                                      reason="give back").ok
    run_tasks(e, real)
    task = TaskRow.get()
    assert task.state == "done", task.reason
    moved = task.progress["hosts"]
    assert len(moved) == 10
    assert ContainerRow.select().count() == before  # none lost
    ids = [h.id for h in HostRow.select().where(HostRow.name.in_(moved))]
    assert ContainerRow.select().where(ContainerRow.host.in_(ids)).count() == 0
    assert {h.pool for h in HostRow.select().where(HostRow.name.in_(moved))} == {"shared"}
    rows = list(PoolMoveRow.select())
    assert len(rows) == 10 and {(r.from_pool, r.to_pool, r.reason, r.actor) for r in rows} == {
        ("feed-web", "shared", "give back", os_user().name)}
    assert sum(r.containers_moved for r in rows) == task.progress["containers_moved"]
    e.stop()


def test_a_move_whose_containers_have_nowhere_to_go_changes_nothing(session):
    e, real = engine_for(session)
    before = {h.name: h.pool for h in HostRow.select()}
    n_containers = ContainerRow.select().count()
    # relation binds a host port: one per host, 84 of tucheng's 100 rpc hosts are taken
    session.cockpit.move_hosts(to_pool="shared", from_pool="user-rpc", idc="tucheng", count=30)
    run_tasks(e, real)
    task = TaskRow.get()
    assert task.state == "failed" and "relation containers on the hosts to move have nowhere else to run" in task.reason
    assert {h.name: h.pool for h in HostRow.select()} == before and ContainerRow.select().count() == n_containers
    assert PoolMoveRow.select().count() == 0
    e.stop()


def test_borrowing_from_the_shared_pool(session):
    e, real = engine_for(session)
    session.cockpit.move_hosts(to_pool="feed-web", from_pool="shared", idc="yongfeng", count=20, reason="borrow")
    run_tasks(e, real)
    assert HostRow.select().where((HostRow.pool == "feed-web") & (HostRow.idc == "yongfeng")).count() == 580
    e.stop()


def test_bad_moves_are_refused_before_they_are_queued(session):
    c = session.cockpit
    assert "no pool named 'nowhere'" in c.move_hosts(to_pool="nowhere", from_pool="shared", count=1).message
    assert "already" in c.move_hosts(to_pool="shared", from_pool="shared", count=1).message
    assert not c.move_hosts(to_pool="shared").ok
    session.cockpit.cfg.role = "viewer"
    assert "needs role operator" in c.move_hosts(to_pool="shared", from_pool="feed-web", count=1).message
    assert TaskRow.select().count() == 0


def test_the_night_swap_lends_hosts_and_the_day_takes_them_back(session):
    e, real = engine_for(session, speed=3600)  # an hour a tick
    start = datetime.fromtimestamp(session.world.start.timestamp(), session.world.traffic.tz)
    assert start.hour == 11
    for _ in range(15):  # 11:50 -> 02:50: past the 01:00 night swap
        run_tasks(e, real)
    night = TaskRow.get(TaskRow.kind == "pool_move")
    assert night.state == "done" and night.actor == "swap:feed-etl" and night.progress["moved"] == 40
    lent = set(night.progress["hosts"])
    assert {h.pool for h in HostRow.select().where(HostRow.name.in_(lent))} == {"hadoop"}
    for _ in range(6):  # past 08:00
        run_tasks(e, real)
    day = TaskRow.select().where(TaskRow.kind == "pool_move").order_by(TaskRow.id.desc()).get()
    assert day.state == "done" and set(day.progress["hosts"]) == lent
    assert {h.pool for h in HostRow.select().where(HostRow.name.in_(lent))} == {"feed-web"}
    assert PoolMoveRow.select().where(PoolMoveRow.reason == "feed-etl").count() == 80
    audits = [a for a in AuditRow.select().where(AuditRow.action == "pool_move") if a.details.get("by") == "swap:feed-etl"]
    assert [(a.action, a.role, a.outcome) for a in audits] == [("pool_move", "engine", "queued")] * 2
    e.stop()


def cloud_for(session) -> tuple[SimCloud, SimCloudModel]:
    m = SimCloudModel.from_world(session.world)
    return SimCloud(m), m


def test_releasing_a_cloud_host_re_places_its_containers_and_deletes_the_instance(session, roles):
    cloud, m = cloud_for(session)
    e, real = engine_for(session, cloud=cloud)
    host = HostRow.get(HostRow.name == "ali-feed-0001")
    had = ContainerRow.select().where(ContainerRow.host == host.id).count()
    assert had > 0
    n = ContainerRow.select().count()
    assert session.cockpit.release_hosts(["ali-feed-0001"]).ok is False  # admins only
    roles.grant("admin")
    session.cockpit.cfg.role = "admin"
    assert session.cockpit.release_hosts(["ali-feed-0001"]).ok
    run_tasks(e, real)
    assert TaskRow.get().state == "done"
    assert HostRow.get_by_id(host.id).released_t is not None and host.instance_id not in m.instances
    assert ContainerRow.select().count() == n
    e.stop()


def test_a_physical_host_cannot_be_released(session, roles):
    cloud, _ = cloud_for(session)
    e, real = engine_for(session, cloud=cloud)
    roles.grant("admin")
    session.cockpit.cfg.role = "admin"
    session.cockpit.release_hosts(["yf-feed-new-0001"])
    run_tasks(e, real)
    assert "only cloud hosts can be released" in TaskRow.get().reason
    e.stop()


def test_prepaid_hosts_warn_before_they_expire_then_go_unless_renewed(session):
    cloud, m = cloud_for(session)
    e, real = engine_for(session, cloud=cloud, speed=86400, expiry_warn_days=7)  # a day a tick
    run_tasks(e, real)
    warned = EventRow.select().where(EventRow.message.contains("expires in"))
    assert warned.count() == 40  # the 40 monthly hosts of the shared pool, due 2026-11-30
    assert session.cockpit.renew_hosts(["ali-shared-0001"], 1).ok
    run_tasks(e, real)
    renewed = HostRow.get(HostRow.name == "ali-shared-0001")
    assert datetime.fromtimestamp(renewed.expires_t, session.world.traffic.tz).date().isoformat() == "2026-12-30"
    for _ in range(5):  # past the end of November
        run_tasks(e, real)
    gone = HostRow.select().where(HostRow.name.startswith("ali-shared-") & HostRow.released_t.is_null(False))
    assert gone.count() == 39 and renewed.name not in {h.name for h in gone}
    assert len([i for i in m.instances.values() if i.charge_type == "PrePaid"]) == 1
    e.stop()


# --- costs --------------------------------------------------------------------------------

HOUR = 3600.0


def test_pay_as_you_go_accrues_by_the_second_from_creation_to_release():
    assert accrued("payg", 3.6, created=100, released=100 + 1800, t0=0, t1=10 * HOUR) == pytest.approx(1.8)
    assert accrued("payg", 3.6, created=0, released=None, t0=HOUR, t1=2 * HOUR) == pytest.approx(3.6)


def test_owned_and_prepaid_hosts_are_spread_over_time():
    assert per_hour("monthly", 730) == pytest.approx(1.0)
    assert per_hour("yearly", 12 * 730) == pytest.approx(1.0)
    assert accrued("owned", 730, created=0, released=None, t0=0, t1=24 * HOUR) == pytest.approx(24.0)


def test_breakdown_sums_per_idc_cluster_and_pool_and_lists_what_expires():
    hosts = [
        CostHost("a", "idc1", "c1", "p1", "payg", 1.0, 0, None, None),
        CostHost("b", "idc1", "c1", "p2", "monthly", 730, 0, None, 5 * 86400),
        CostHost("c", "idc2", "c2", "p3", "owned", 730, 0, 12 * HOUR, None),  # released at noon
    ]
    lines = {(x.scope, x.name): x for x in breakdown(hosts, now=24 * HOUR, month_start=0)}
    assert lines[("idc", "idc1")].per_day == pytest.approx(48.0) and lines[("idc", "idc1")].hosts == 2
    assert lines[("idc", "idc2")].per_day == 0 and lines[("idc", "idc2")].month_to_date == pytest.approx(12.0)
    assert lines[("pool", "p1")].by_charge == {"payg": pytest.approx(730.0)}
    (soon, days), = expiring(hosts, now=24 * HOUR, within_days=7)
    assert soon.name == "b" and days == pytest.approx(4.0)


def test_the_costs_view_of_the_demo(session):
    v = session.cockpit.costs()
    idcs = {x.name: x for x in v.lines if x.scope == "idc"}
    assert set(idcs) == {"yongfeng", "tucheng", "aliyun"}
    assert idcs["aliyun"].by_charge["payg"] == pytest.approx(60 * 3.8 * 730)
    assert len(v.expiring) == 40
