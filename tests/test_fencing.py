"""Every engine writer is fenced by the lease, on the database's clock: an engine frozen past its
lease writes nothing once its successor has taken over. On SQLite and on PostgreSQL."""

from __future__ import annotations

import time

import pytest

from cockpit.backends.base import InitEvent
from cockpit.backends.sim.cloud import SimCloud, SimCloudModel
from cockpit.backends.sim.init import SimInit
from cockpit.engine.ecs import EcsDrainer
from cockpit.engine.engine import Engine
from cockpit.engine.init import InitRunner, StatusWriter
from cockpit.engine.lease import Lease, LeaseLost, current_holder
from cockpit.engine.orders import place_order
from cockpit.store.db import db_now, open_store
from cockpit.store.models import CallRow, ClockRow, EcsCallRow, EventRow, HostRow, LeaseRow, TaskRow


def _state() -> dict:
    return {
        "tick": ClockRow.get_by_id(1).tick,
        "calls": sorted((c.id, c.state) for c in EcsCallRow.select()),
        "hosts": HostRow.select().count(),
        "statuses": sorted((h.name, h.status) for h in HostRow.select().where(HostRow.order.is_null(False))),
        "events": EventRow.select().count(),
        "tasks": sorted((t.id, t.state) for t in TaskRow.select()),
        "outside": CallRow.select().count(),
    }


def test_an_engine_frozen_past_its_lease_writes_nothing_after_its_successor_took_over(demo_url, demo_world):
    db = open_store(demo_url)
    a = Engine(db, demo_world, lease_ttl=0.6)
    assert a.step_lease()
    # a has work in hand: an ECS order with calls out, hosts to initialise, a scale task
    cloud = SimCloud(SimCloudModel.from_world(demo_world))
    world_instances = len(cloud.model.instances)
    template = next(t for t in demo_world.templates if t.ecs)
    place_order(demo_world, template, 40, None, "sre", 0.0)
    drainer = EcsDrainer(db, cloud, demo_world, fence=a.lease.fenced)
    out = drainer._reserve(2)  # two RunInstances calls written, about to be made
    assert len(out) == 2
    HostRow.update(status="pending").where(HostRow.name.in_(["ali-feed-0001", "ali-feed-0002"])).execute()
    writer = StatusWriter(db, a.lease.fenced)
    runner = InitRunner(db, SimInit(seed=1), writer, a.lease.fenced)
    p = _preview(a, db)
    time.sleep(0.9)  # a freezes past its lease...
    b = Engine(db, demo_world)
    assert b.step_lease(), b.last_error  # ...and b takes over
    before = _state()
    # a wakes up and carries on as if nothing happened
    results = [(call, (cloud.run_instances(call.req), {})) for call in out]
    with pytest.raises(LeaseLost):
        drainer._record(results)
    writer.put(InitEvent("ali-feed-0001", "ready"))
    writer.flush()
    with pytest.raises(LeaseLost):
        runner.kick()
    with pytest.raises(LeaseLost):
        a.runner.run()  # the scale task: not even prepared
    assert a.tick() is False and a.active is False
    assert p is not None
    assert _state() == before  # not one row written by a
    writer.stop()
    # b finds a's calls unanswered and makes them again with their tokens: the same 40 instances
    b.drainer = None
    EcsDrainer(db, cloud, demo_world, fence=b.lease.fenced).drain(
        until=lambda: EcsCallRow.select().where(EcsCallRow.state.in_(("in_flight", "retry"))).count() == 0
        and HostRow.select().where(HostRow.order.is_null(False)).count() >= 40)
    assert HostRow.select().where(HostRow.order.is_null(False)).count() == 40
    assert len(cloud.model.instances) == world_instances + 40  # none twice
    b.stop()
    db.close()


def _preview(engine: Engine, db):
    from cockpit.config import Config
    from cockpit.engine.facade import Cockpit

    c = Cockpit(Config(), engine.world, db)
    p = c.preview(c.whatif(target="feed", count=5))
    assert c.apply_plan(p).ok
    return p


def test_a_host_whose_clock_runs_an_hour_ahead_cannot_take_a_live_lease(demo_url, demo_world):
    db = open_store(demo_url)
    a = Engine(db, demo_world)
    assert a.step_lease()
    ahead = Engine(db, demo_world, real_clock=lambda: time.time() + 3600)
    assert ahead.step_lease() is False  # the lease is judged by the database's clock, not the host's
    behind = Engine(db, demo_world, real_clock=lambda: time.time() - 3600)
    assert behind.step_lease() is False
    a.stop()
    assert ahead.step_lease() is True
    ahead.stop()
    db.close()


def test_the_lease_is_kept_in_the_databases_time(demo_url):
    db = open_store(demo_url)
    lease = Lease(db, ttl=4.0)
    assert lease.acquire()
    row = LeaseRow.get()
    now = db_now(db)
    assert row.heartbeat_real <= now < row.expires_real <= now + 4.0
    assert current_holder().holder == lease.id
    lease.release()
    assert current_holder() is None
    db.close()


def test_a_fenced_write_lands_whole_or_not_at_all(demo_url):
    db = open_store(demo_url)
    lease = Lease(db, ttl=0.3)
    assert lease.acquire()
    with lease.fenced():
        ClockRow.update(tick=ClockRow.tick + 1).execute()
    ticks = ClockRow.get_by_id(1).tick
    time.sleep(0.5)  # lapsed, though nobody took it: a lapsed lease is not renewed by writing
    with pytest.raises(LeaseLost):
        with lease.fenced():
            ClockRow.update(tick=ClockRow.tick + 1).execute()
    assert ClockRow.get_by_id(1).tick == ticks
    db.close()
