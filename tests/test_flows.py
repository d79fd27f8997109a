"""Expansion flows on the simulated platform: every step in order, per host and container, with
pause, resume, stop, retries, a quota, an engine that restarts in the middle, and scheduling
managers that fail over through their discovery lock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cockpit.backends.sim.discovery import SimDiscovery
from cockpit.core.flow import IN_STEPS, OUT_STEPS, FlowSpec
from cockpit.engine.engine import Engine
from cockpit.engine.flow import queue_flow
from cockpit.engine.managers import Managers
from cockpit.store.db import open_store
from cockpit.store.models import ContainerRow, FlowItemRow, TaskRow


def _engine(db, world, **kw) -> Engine:
    e = Engine(db, world, speed=60, tick_s=0.2, autoscaling=False, **kw)
    e.start()
    assert _until(lambda: e.flows is not None, 10), "the engine did not become active"
    return e


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _queue(e: Engine, kind: str, **spec) -> int:
    with e.db.atomic():
        fid = queue_flow(kind, FlowSpec(**spec), "sre", e.platform_now())
    e.kick_flows()
    return fid


def _task(fid: int) -> TaskRow:
    return TaskRow.get_by_id(fid)


def _finished(fid: int) -> bool:
    return _task(fid).state in ("done", "failed", "cancelled")


@pytest.fixture
def store(demo_db):
    db = open_store(demo_db)
    yield db
    db.close()


def test_scaling_out_runs_every_step_in_order_and_new_containers_reach_discovery(store, demo_world):
    e = _engine(store, demo_world)
    try:
        before = set(m.key for m in e.discovery.members("feed").members)
        fid = _queue(e, "expand", service="feed", count=6, idc="yongfeng", batch=2)
        assert _until(lambda: _finished(fid), 30)
        t = _task(fid)
        assert t.state == "done", t.reason
        steps = t.progress["steps"]
        assert set(steps) == set(OUT_STEPS) and all(s["state"] == "done" for s in steps.values())
        # entered in the seed's order, each once, each after the one before it ended
        assert all(steps[a]["t1"] <= steps[b]["t0"] for a, b in zip(OUT_STEPS, OUT_STEPS[1:]))
        new = list(ContainerRow.select().where(ContainerRow.task == fid))
        assert len(new) == 6 and {c.state for c in new} == {"running"}
        members = {m.key for m in e.discovery.members("feed").members}
        assert members - before == {f"{c.address}:{c.ports[0][1]}" for c in new}
        items = list(FlowItemRow.select().where(FlowItemRow.task == fid))
        assert {(i.kind, i.step, i.state) for i in items} == {("container", "discovery", "done")}
        # each container's own log tells where it went and that it is in the upstreams
        log = [line[2] for line in items[0].log]
        assert any(x.startswith("placed on ") for x in log) and any(x.startswith("running on ") for x in log)
        assert log[-1].startswith("upstream ")
        # the template's dependencies were asked for, by ratio, as flows of their own
        children = t.progress["children"]
        assert [(_task(c).spec["service"], _task(c).spec["parent"]) for c in children] == [("user", fid), ("card", fid)]
    finally:
        e.stop()


def test_scaling_in_takes_containers_out_of_discovery_before_stopping_them(store, demo_world):
    e = _engine(store, demo_world)
    try:
        fid = _queue(e, "shrink", service="card", count=4, idc="tucheng", drain_s=0.3)
        assert _until(lambda: _finished(fid), 30)
        t = _task(fid)
        assert t.state == "done", t.reason
        steps = t.progress["steps"]
        assert set(steps) == set(IN_STEPS) and all(steps[a]["t1"] <= steps[b]["t0"] for a, b in zip(IN_STEPS, IN_STEPS[1:]))
        items = list(FlowItemRow.select().where(FlowItemRow.task == fid))
        assert len(items) == 4 and {(i.step, i.state) for i in items} == {("stop", "done")}
        members = {m.key for m in e.discovery.members("card").members}
        for it in items:
            assert f"{it.request['address']}:{it.request['port']}" not in members
            assert ContainerRow.get_or_none(ContainerRow.name == it.name) is None
            out = next(line[0] for line in it.log if line[1] == "deregister" and line[2] == "out of discovery")
            stopped = next(line[0] for line in it.log if line[1] == "stop" and line[2].startswith("stopped"))
            assert stopped - out >= 0.3  # drained in between
    finally:
        e.stop()


def test_a_paused_flow_waits_and_a_stopped_one_does_nothing_more(store, demo_world):
    e = _engine(store, demo_world)
    try:
        fid = _queue(e, "shrink", service="card", count=2, idc="tucheng", drain_s=1.5)
        assert _until(lambda: _task(fid).progress.get("step") == "drain", 20)
        TaskRow.update(state="paused").where(TaskRow.id == fid).execute()
        time.sleep(2.0)  # longer than the drain: a paused flow does not move on
        assert _task(fid).progress["step"] == "drain" and _task(fid).state == "paused"
        TaskRow.update(state="running").where(TaskRow.id == fid).execute()
        e.kick_flows()
        assert _until(lambda: _task(fid).state == "done", 20)

        other = _queue(e, "shrink", service="card", count=2, idc="tucheng", drain_s=30)
        assert _until(lambda: _task(other).progress.get("step") == "drain", 20)
        out = [i for i in FlowItemRow.select().where(FlowItemRow.task == other)]
        gone = {f"{i.request['address']}:{i.request['port']}" for i in out}
        assert not gone & {m.key for m in e.discovery.members("card").members}  # deregistered, draining
        TaskRow.update(state="cancelled", reason="stopped by sre").where(TaskRow.id == other).execute()
        e.kick_flows()
        # stopped: nothing more is done, and what it left is made whole: the containers it took out
        # of discovery but did not stop serve again
        assert _until(lambda: _task(other).progress.get("settled"), 20)
        t = _task(other)
        assert t.state == "cancelled" and "stop" not in t.progress["steps"]
        assert gone <= {m.key for m in e.discovery.members("card").members}
        assert {ContainerRow.get(ContainerRow.name == i.name).state for i in out} == {"running"}
        items = list(FlowItemRow.select().where(FlowItemRow.task == other))
        assert {(i.step, i.state) for i in items} == {("undo", "done")}
        assert all(i.log[-1][2] == "back in discovery, running" for i in items)
    finally:
        e.stop()


def test_a_stopped_expand_removes_the_containers_it_started_that_never_served(store, demo_world):
    e = _engine(store, demo_world)
    try:
        down = {f"yf-feed-new-{i:04d}" for i in range(1, 301, 2)}
        e.runtime.unreachable.update(down)
        before = ContainerRow.select().count()
        fid = _queue(e, "expand", service="feed", count=40, idc="yongfeng", batch=1, retries=5)
        assert _until(lambda: FlowItemRow.select().where((FlowItemRow.task == fid)
                                                         & (FlowItemRow.state == "done")).count() >= 2, 20)
        TaskRow.update(state="cancelled", reason="stopped by sre").where(TaskRow.id == fid).execute()
        e.kick_flows()
        assert _until(lambda: _task(fid).progress.get("settled"), 30)
        e.runtime.unreachable.clear()
        # nothing of it starts after the stop; what it started is gone again, on the runtime too
        left = list(ContainerRow.select().where(ContainerRow.task == fid))
        assert left == [] and ContainerRow.select().count() == before
        names = [i.name for i in FlowItemRow.select().where(FlowItemRow.task == fid)]
        assert all(e.runtime.inspect(i.host, i.name) is None
                   for i in FlowItemRow.select().where(FlowItemRow.task == fid)), names
        assert not {m.key for m in e.discovery.members("feed").members} & {
            f"{i.result.get('address')}:{(i.result.get('ports') or [[0, 0]])[0][1]}"
            for i in FlowItemRow.select().where(FlowItemRow.task == fid)}
    finally:
        e.stop()


def test_an_engine_that_will_not_start_containers_is_retried_then_failed_per_host(store, demo_world):
    e = _engine(store, demo_world)
    try:
        down = {f"yf-feed-new-{i:04d}" for i in range(1, 301, 2)}
        e.runtime.unreachable.update(down)  # those hosts' dockerd is down
        fid = _queue(e, "expand", service="feed", count=40, idc="yongfeng", batch=20, retries=2)
        assert _until(lambda: _finished(fid), 40)
        t = _task(fid)
        assert t.state == "done", t.reason
        bad = list(FlowItemRow.select().where((FlowItemRow.task == fid) & (FlowItemRow.state == "failed")))
        assert bad and all(i.host in down and i.attempts == 2 for i in bad)
        assert "does not answer" in bad[0].detail
        assert t.progress["failed"] == len(bad) and t.progress["deployed"] == 40 - len(bad)
        assert not ContainerRow.select().where(ContainerRow.name.in_([i.name for i in bad])).exists()
    finally:
        e.stop()


def test_a_flow_beyond_the_pools_quota_fails_before_anything_changes(store, demo_world):
    e = _engine(store, demo_world)
    try:
        before = ContainerRow.select().count()
        fid = _queue(e, "expand", service="card", count=6000, idc="yongfeng")
        assert _until(lambda: _finished(fid), 20)
        t = _task(fid)
        assert t.state == "failed" and "quota: pool card-web runs at most 6000 containers of card" in t.reason
        assert t.progress["steps"]["quota"]["state"] == "failed"
        assert ContainerRow.select().count() == before
    finally:
        e.stop()


def test_an_engine_restarted_mid_flow_finishes_it_without_doing_a_step_twice(store, demo_world):
    e = _engine(store, demo_world)
    fid = _queue(e, "shrink", service="card", count=3, idc="tucheng", drain_s=2.0)
    assert _until(lambda: _task(fid).progress.get("step") == "drain", 20)
    first = dict(_task(fid).progress["steps"])
    e.stop()
    e2 = _engine(store, demo_world)
    try:
        assert _until(lambda: _finished(fid), 30)
        t = _task(fid)
        assert t.state == "done", t.reason
        for step in ("deregister",):  # done before the restart: not entered again
            assert t.progress["steps"][step]["t0"] == first[step]["t0"]
        assert len(list(FlowItemRow.select().where(FlowItemRow.task == fid))) == 3
    finally:
        e2.stop()


def test_the_standby_manager_takes_over_an_idc_when_the_active_one_stops_renewing():
    now = [0.0]
    d = SimDiscovery(clock=lambda: now[0])
    a = Managers(d, ["yongfeng", "tucheng"], "engine-a", ttl_s=4.0)
    b = Managers(d, ["yongfeng", "tucheng"], "engine-b", ttl_s=4.0)
    assert a.step() == {"yongfeng", "tucheng"}
    assert b.step() == set()  # standby
    now[0] = 3.0
    assert a.step() == {"yongfeng", "tucheng"}  # renewed
    now[0] = 6.5
    assert b.step() == set()  # a's renewal at 3.0 holds until 7.0
    now[0] = 7.5  # a died after its renewal at 3.0
    assert b.step() == {"yongfeng", "tucheng"}
    assert a.step() == set()  # a that comes back finds the locks taken
    assert d.lock_holder("scheduler/yongfeng") == "engine-b"


def test_a_flow_borrows_shared_hosts_then_orders_ecs_and_a_shrink_gives_both_back(store, demo_world):
    from cockpit.backends.factory import make_cloud, make_init
    from cockpit.store.models import HostRow

    init, settings = make_init({}, demo_world, Path(store.database).parent)
    e = _engine(store, demo_world, cloud=make_cloud({}, demo_world), init=init, init_settings=settings)

    def pool_hosts() -> int:
        return HostRow.select().where((HostRow.pool == "feed-web") & (HostRow.idc == "aliyun")
                                      & HostRow.released_t.is_null()).count()

    try:
        before = pool_hosts()
        fid = _queue(e, "expand", service="feed", count=700, idc="aliyun", batch=50)
        assert _until(lambda: _finished(fid), 90)
        t = _task(fid)
        assert t.state == "done", t.reason
        notes = {k: v["note"] for k, v in t.progress["steps"].items()}
        assert "need 40 shared and 18 ECS hosts" in notes["resources"]
        assert notes["hosts"] == "58 hosts acquired"
        assert pool_hosts() == before + 58
        hosts = list(FlowItemRow.select().where((FlowItemRow.task == fid) & (FlowItemRow.kind == "host")))
        assert len(hosts) == 58 and {h.state for h in hosts} <= {"done", "failed"}
        # shrinking empties the borrowed and ordered hosts first, then gives them back
        back = _queue(e, "shrink", service="feed", count=700, idc="aliyun", drain_s=0.2)
        assert _until(lambda: _finished(back), 60)
        t = _task(back)
        assert t.state == "done", t.reason
        assert t.progress["steps"]["return_hosts"]["note"] == "40 hosts back in the shared pool; 18 hosts released"
        assert pool_hosts() == before
        released = HostRow.select().where(HostRow.released_t.is_null(False) & (HostRow.source == "ecs")
                                          & HostRow.name.in_(t.progress["releasing"])).count()
        assert released == 18
    finally:
        e.stop()
