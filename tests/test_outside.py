"""Calls to the outside follow one pattern: intent written, call made outside any transaction,
answer recorded; an engine that dies in between is replaced by one that makes the call again
safely. The container runtime covers the whole lifecycle, with addresses and ports."""

from __future__ import annotations

import sqlite3

import pytest
from peewee import fn

from cockpit.backends.base import ContainerError, ContainerSpec
from cockpit.backends.sim.cloud import SimCloud, SimCloudModel
from cockpit.backends.sim.containers import SimContainers
from cockpit.engine.engine import Engine
from cockpit.engine.outside import calls_of, due, perform, record
from cockpit.engine.tasks import _kinds
from cockpit.store.models import CallRow, ContainerRow, EventRow, HostRow, TaskRow
from tests.test_engine import FakeClock


def engine_for(session, runtime=None, cloud=None, real=None) -> tuple[Engine, FakeClock]:
    real = real or FakeClock()
    e = Engine(session.db, session.world, real_clock=real, runtime=runtime, cloud=cloud)
    assert e.step_lease()
    return e, real


def scale(session, service="feed", count=6, idc="yongfeng") -> int:
    c = session.cockpit
    outcome = c.apply_plan(c.preview(c.whatif(target=service, count=count, idc=idc)))
    assert outcome.ok
    return outcome.task


def crash_after_the_calls(e: Engine, task_id: int) -> None:
    """The engine prepares the task and makes its calls, stage by stage; it dies after making the
    last stage's calls, before writing their answers."""
    task = TaskRow.get_by_id(task_id)
    assert e.runner._prepare(task, _kinds()[task.kind])
    last = CallRow.select(fn.MAX(CallRow.stage)).where(CallRow.task == task_id).scalar()
    while True:
        calls = due(task_id, e.real_clock())
        answers = perform(calls, e.handlers())
        if calls[0].stage == last:
            break
        with e.lease.fenced():
            record(answers, e.real_clock())
    e.lease.release()  # as if the process died (a successor need not wait for the lapse here)
    e.active = False


# --- the runtime ---------------------------------------------------------------------------------


def spec(name="feed-9-1", host="h1", ports=(8080,), host_ports=()) -> ContainerSpec:
    return ContainerSpec(name, host, "10.0.0.1", "feed", "feed:1", ports, host_ports, 1.0, 1.0)


def test_the_sim_runtime_starts_once_and_stops_and_removes_what_is_gone_without_error():
    rt = SimContainers()
    c = rt.start(spec())
    assert c.state == "running" and c.address == "10.0.0.1" and c.ports == ((8080, 31000),)
    assert rt.start(spec()) == c  # started again after a crash: the same container
    assert rt.start(spec("feed-9-2")).ports == ((8080, 31001),)  # its own host port
    with pytest.raises(ContainerError, match="running: stop it first"):
        rt.remove("h1", "feed-9-1")
    rt.stop("h1", "feed-9-1")
    assert rt.inspect("h1", "feed-9-1").state == "exited"
    rt.remove("h1", "feed-9-1")
    rt.stop("h1", "feed-9-1")  # gone: stopping and removing it again is done, not an error
    rt.remove("h1", "feed-9-1")
    assert rt.inspect("h1", "feed-9-1") is None and [x.name for x in rt.list("h1")] == ["feed-9-2"]
    assert rt.start(spec("feed-9-3")).ports == ((8080, 31000),)  # the freed port is given out again


def test_a_service_on_the_host_network_binds_its_ports_as_they_are():
    rt = SimContainers()
    assert rt.start(spec("relation-1-1", ports=(9090,), host_ports=(9090,))).ports == ((9090, 9090),)


def test_an_unreachable_engine_is_a_transient_error():
    rt = SimContainers()
    rt.unreachable.add("h1")
    with pytest.raises(ContainerError) as e:
        rt.start(spec())
    assert e.value.transient and "h1" in str(e.value)


# --- the pattern ---------------------------------------------------------------------------------


class Probe:
    """Wraps the runtime and the cloud: at each call, can another connection take the write lock?"""

    def __init__(self, inner, path: str):
        self.inner, self.path, self.locked = inner, path, []

    def _probe(self) -> None:
        con = sqlite3.connect(self.path, timeout=0.05)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
            self.locked.append(False)
        except sqlite3.OperationalError:
            self.locked.append(True)
        finally:
            con.close()

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            self._probe()
            return attr(*a, **kw)

        return call


def test_no_write_lock_is_held_while_engines_and_the_cloud_are_called(session, demo_db, roles):
    runtime = Probe(SimContainers(), demo_db)
    cloud = Probe(SimCloud(SimCloudModel.from_world(session.world)), demo_db)
    e, _ = engine_for(session, runtime=runtime, cloud=cloud)
    scale(session, count=4)
    roles.grant("admin")
    session.cockpit.cfg.role = "admin"
    assert session.cockpit.release_hosts(["ali-feed-0001"]).ok
    assert session.cockpit.renew_hosts(["ali-shared-0001"], 1).ok
    e.run_tasks()
    assert [t.state for t in TaskRow.select()] == ["done", "done", "done"]
    assert runtime.locked and cloud.locked
    assert not any(runtime.locked) and not any(cloud.locked)
    e.stop()


def test_a_scale_task_whose_engine_died_after_its_calls_is_finished_without_starting_twice(session):
    runtime = SimContainers()  # the hosts' engines: they outlive the cockpit
    a, real = engine_for(session, runtime=runtime)
    before = ContainerRow.select().count()
    task = scale(session, count=6)
    crash_after_the_calls(a, task)
    planned = sum(v["placed"] for v in TaskRow.get_by_id(task).progress.values())
    assert planned > 6  # feed, and what it pulls in by its template's ratios
    assert runtime.calls == planned
    assert TaskRow.get_by_id(task).state == "running"
    b, _ = engine_for(session, runtime=runtime, real=real)
    assert b.run_tasks()
    assert TaskRow.get_by_id(task).state == "done"
    started = list(ContainerRow.select().where(ContainerRow.task == task))
    assert len(started) == planned and ContainerRow.select().count() == before + planned
    assert all(c.state == "running" and c.address for c in started)
    assert all(c.ports for c in started)  # every service of the demo publishes a port
    on_hosts = [x for h in {c.host for c in started} for x in runtime.list(HostRow.get_by_id(h).name)]
    assert sorted(x.name for x in on_hosts) == sorted(c.name for c in started)  # each started once
    assert len({c.ref for c in started}) == planned
    b.stop()


def test_a_renewal_made_again_after_a_crash_is_not_paid_twice(session):
    model = SimCloudModel.from_world(session.world)
    cloud = SimCloud(model)
    a, real = engine_for(session, cloud=cloud)
    assert session.cockpit.renew_hosts(["ali-shared-0001"], 1).ok
    task = TaskRow.get().id
    crash_after_the_calls(a, task)
    host = HostRow.get(HostRow.name == "ali-shared-0001")
    assert model.instances[host.instance_id].renewed_months == 1
    b, _ = engine_for(session, cloud=cloud, real=real)
    b.run_tasks()
    assert TaskRow.get_by_id(task).state == "done"
    assert model.instances[host.instance_id].renewed_months == 1  # renewed (and paid) once
    assert HostRow.get_by_id(host.id).expires_t > host.expires_t
    b.stop()


def test_a_release_made_again_after_a_crash_counts_the_deleted_instance_as_gone(session, roles):
    model = SimCloudModel.from_world(session.world)
    cloud = SimCloud(model)
    a, real = engine_for(session, cloud=cloud)
    roles.grant("admin")
    session.cockpit.cfg.role = "admin"
    assert session.cockpit.release_hosts(["ali-feed-0001"]).ok
    task = TaskRow.get().id
    host = HostRow.get(HostRow.name == "ali-feed-0001")
    crash_after_the_calls(a, task)  # starts, stops, then the delete: made, and the engine dies
    assert host.instance_id not in model.instances
    b, _ = engine_for(session, cloud=cloud, real=real)
    b.run_tasks()
    assert TaskRow.get_by_id(task).state == "done", TaskRow.get_by_id(task).reason
    assert host.instance_id not in model.instances
    assert HostRow.get_by_id(host.id).released_t is not None
    assert ContainerRow.select().where(ContainerRow.host == host.id).count() == 0
    b.stop()


# --- what moves and shrinks stops what it removes --------------------------------------------------


def test_moved_hosts_no_longer_run_their_old_containers(session):
    e, _ = engine_for(session)
    runtime = e.runtime
    assert session.cockpit.move_hosts(to_pool="shared", from_pool="feed-web", idc="tucheng", count=3).ok
    e.run_tasks()
    task = TaskRow.get()
    assert task.state == "done", task.reason
    for name in task.progress["hosts"]:
        assert runtime.list(name) == []  # stopped and removed, not just forgotten
        hid = HostRow.get(HostRow.name == name).id
        assert ContainerRow.select().where(ContainerRow.host == hid).count() == 0
    removes = [c for c in calls_of(task.id) if c.kind == "container.remove"]
    assert removes and all(c.state == "done" for c in removes)
    e.stop()


def test_a_move_whose_replacements_cannot_start_moves_no_host_and_keeps_the_old_containers(session):
    e, real = engine_for(session)
    runtime = e.runtime
    pool = {h.name for h in HostRow.select().where((HostRow.pool == "feed-web") & (HostRow.idc == "tucheng"))}
    runtime.unreachable |= pool  # every engine in the pool is down: nowhere to start replacements
    running = ContainerRow.select().count()
    assert session.cockpit.move_hosts(to_pool="shared", from_pool="feed-web", idc="tucheng", count=2).ok
    for _ in range(8):  # the engine tries again with back-off, then gives up
        e.run_tasks()
        real.t += 120
    task = TaskRow.get()
    assert task.state == "failed" and "replacement containers did not start" in task.reason
    assert "no host moved" in task.reason
    assert {h.pool for h in HostRow.select().where(HostRow.name.in_(pool))} == {"feed-web"}
    assert ContainerRow.select().count() == running
    assert ContainerRow.select().where(ContainerRow.state != "running").count() == 0
    assert CallRow.select().where((CallRow.task == task.id) & (CallRow.kind == "container.remove")
                                  & (CallRow.state == "cancelled")).count() > 0
    assert EventRow.select().where(EventRow.message.contains(f"task {task.id} failed")).count() == 1
    e.stop()


def test_scale_in_stops_containers_where_the_service_is_most_crowded(session):
    e, _ = engine_for(session)
    before = ContainerRow.select().where((ContainerRow.service == "feed") & (ContainerRow.idc == "yongfeng")).count()
    assert session.cockpit.scale_in("feed", 10, idc="yongfeng").ok
    e.run_tasks()
    task = TaskRow.get()
    assert task.state == "done" and task.progress["feed"]["stopped"] == 10
    after = ContainerRow.select().where((ContainerRow.service == "feed") & (ContainerRow.idc == "yongfeng")).count()
    assert after == before - 10
    assert EventRow.select().where(EventRow.message.contains("feed -10")).count() == 1
    e.stop()


def test_scale_in_of_more_than_runs_is_refused_whole(session):
    e, _ = engine_for(session)
    n = ContainerRow.select().count()
    assert session.cockpit.scale_in("card", 100_000).ok
    e.run_tasks()
    task = TaskRow.get()
    assert task.state == "failed" and "100000 asked to stop" in task.reason
    assert ContainerRow.select().count() == n
    e.stop()


def test_the_engine_scales_moves_and_releases_on_both_databases(demo_url, demo_world, roles):
    from cockpit.config import Config
    from cockpit.engine.facade import Cockpit
    from cockpit.store.db import open_store

    db = open_store(demo_url)
    real = FakeClock()
    cloud = SimCloud(SimCloudModel.from_world(demo_world))
    e = Engine(db, demo_world, real_clock=real, cloud=cloud)
    assert e.step_lease()
    roles.grant("admin")
    c = Cockpit(Config(), demo_world, db)
    before = ContainerRow.select().count()
    assert c.apply_plan(c.preview(c.whatif(target="feed", count=5, idc="tucheng"))).ok
    assert c.move_hosts(to_pool="shared", from_pool="feed-web", idc="yongfeng", count=2).ok
    assert c.release_hosts(["ali-feed-0002"]).ok
    real.t += 1
    assert e.tick()
    e.run_tasks()
    assert [(t.kind, t.state) for t in TaskRow.select().order_by(TaskRow.id)] == [
        ("scale", "done"), ("pool_move", "done"), ("release", "done")]
    added = sum(v["placed"] for v in TaskRow.get_by_id(1).progress.values())
    assert ContainerRow.select().count() == before + added
    assert ContainerRow.select().where(ContainerRow.state != "running").count() == 0
    e.stop()
    db.close()


def test_a_move_whose_replacements_partly_start_stops_the_ones_that_did(session):
    e, real = engine_for(session)
    runtime = e.runtime
    pool = sorted(h.name for h in HostRow.select().where((HostRow.pool == "feed-web") & (HostRow.idc == "tucheng")))
    runtime.unreachable |= set(pool[::2])  # half the engines of the pool are down
    running = ContainerRow.select().count()
    assert session.cockpit.move_hosts(to_pool="shared", from_pool="feed-web", idc="tucheng", count=10).ok
    for _ in range(10):  # back-offs, then the failure, then the undo task
        e.run_tasks()
        real.t += 120
    move, undo = TaskRow.select().order_by(TaskRow.id)
    assert move.state == "failed" and "no host moved" in move.reason
    assert undo.kind == "remove" and undo.state == "done" and undo.progress["removed"] > 0
    assert ContainerRow.select().count() == running  # no surplus left beside the originals
    assert ContainerRow.select().where(ContainerRow.task == move.id).count() == 0
    e.stop()


def test_a_task_the_engine_cannot_read_fails_alone_and_the_next_one_runs(session):
    e, _ = engine_for(session)
    TaskRow.insert(kind="scale_in", state="queued", spec={"service": "feed", "count": "x"}, actor="someone",
                   created_t=0, updated_t=0, real_created=0).execute()
    assert session.cockpit.scale_in("card", 2).ok
    e.run_tasks()
    bad, good = TaskRow.select().order_by(TaskRow.id)
    assert bad.state == "failed" and "cannot be read" in bad.reason
    assert good.state == "done"
    e.stop()
